"""Services: a pattern's services found by their compose names."""

from compose.config import Doc
from compose.k8s.common import labels


def service(name: str, ports: dict[str, int], *, headless: bool = False) -> Doc:
    """A Service under the compose name, so peers' URLs work unchanged.

    ``headless`` (gRPC peers): no virtual IP, the name resolves to every ready pod, so the
    caller's ``round_robin`` over ``dns:///`` spreads calls over them (a virtual IP would
    pin each long-lived HTTP/2 connection to one pod).
    """
    spec: Doc = {"selector": labels(name)}
    if headless:
        spec["clusterIP"] = "None"
    spec["ports"] = [{"name": n, "port": p, "targetPort": n} for n, p in ports.items()]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "labels": labels(name)},
        "spec": spec,
    }
