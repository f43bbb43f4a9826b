"""Containers and pod templates of a pattern's services: init containers from the one-shots
they wait for, volumes, probes, resources and the security context."""

from compose.config import Doc
from compose.k8s.common import K8sError, labels, seconds, slug, substitute
from compose.k8s.pattern import Pattern
from compose.k8s.probes import container_security, pod_security, probes, resources, user_ids
from compose.k8s.secrets import env


def container(
    pattern: Pattern, name: str, pod_volumes: dict[str, Doc], *, init: bool = False
) -> Doc:
    """The container of compose service ``name``; adds its volumes to ``pod_volumes``."""
    svc = pattern.services[name]
    command = [substitute(str(a)) for a in svc.get("entrypoint") or []]
    args = [substitute(str(a)) for a in svc.get("command") or []]
    out: Doc = {"name": name, "image": svc["image"]}
    if command:
        out["command"] = command
    if args:
        out["args"] = args
    variables = env(svc, [*command, *args])
    if variables:
        out["env"] = variables
    if not init:
        ports = pattern.ports(name)
        if ports:
            out["ports"] = [{"name": n, "containerPort": p} for n, p in ports.items()]
        out |= probes(svc)
    res = resources(svc)
    if res:
        out["resources"] = res
    out["securityContext"] = container_security(svc)
    mounts = volume_mounts(pattern, name, pod_volumes)
    if mounts:
        out["volumeMounts"] = mounts
    return out


def volume_mounts(pattern: Pattern, name: str, pod_volumes: dict[str, Doc]) -> list[Doc]:
    """Mounts of the service; memory emptyDirs for tmpfs and shm, emptyDirs or PVCs."""
    svc = pattern.services[name]
    mounts = []
    for path in svc.get("tmpfs") or []:
        volume = f"{name}-{slug(path)}"
        pod_volumes[volume] = {"name": volume, "emptyDir": {"medium": "Memory"}}
        mounts.append({"name": volume, "mountPath": path})
    if svc.get("shm_size"):
        size = f"{int(svc['shm_size']) // 2**20}Mi"
        pod_volumes["dshm"] = {
            "name": "dshm",
            "emptyDir": {"medium": "Memory", "sizeLimit": size},
        }
        mounts.append({"name": "dshm", "mountPath": "/dev/shm"})
    for volume in svc.get("volumes") or []:
        if volume["type"] != "volume":
            raise K8sError(f"{name}: only named volumes map to Kubernetes, not {volume}")
        if not volume.get("source"):  # anonymous: the container's own scratch space
            scratch = f"{name}-{slug(volume['target'])}"
            pod_volumes[scratch] = {"name": scratch, "emptyDir": {}}
            mounts.append({"name": scratch, "mountPath": volume["target"]})
            continue
        source = volume["source"]
        written_by_one_shot = any(source in pattern.mounts_of(o) for o in pattern.one_shots)
        if written_by_one_shot:
            pod_volumes[source] = {"name": source, "emptyDir": {}}
        elif not pattern.stateful(name):
            raise K8sError(f"{name}: volume {source} is neither filled by a one-shot nor stateful")
        mount = {"name": source, "mountPath": volume["target"]}
        if volume.get("read_only"):
            mount["readOnly"] = True
        mounts.append(mount)
    return mounts


def pod(pattern: Pattern, name: str) -> Doc:
    """The pod template of service ``name`` (init containers from its one-shots)."""
    svc = pattern.services[name]
    volumes: dict[str, Doc] = {}
    inits = [container(pattern, o, volumes, init=True) for o in pattern.init_sources(name)]
    main = container(pattern, name, volumes)
    for init in inits:  # a one-shot without limits of its own: those of the pod's service
        if "resources" in main:
            init.setdefault("resources", main["resources"])
    if pattern.stateful(name) and svc["image"].split("/")[-1].startswith("postgres"):
        # The official entrypoint initialises a data directory it owns: a sub-directory
        # of the volume (whose root belongs to root, group fsGroup).
        main["env"].append({"name": "PGDATA", "value": "/var/lib/postgresql/data/pgdata"})
    spec: Doc = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,  # no *_PORT variables that could clash with settings
        "securityContext": pod_security(*user_ids(name, svc)),
    }
    grace = seconds(svc.get("stop_grace_period"))
    if grace:
        spec["terminationGracePeriodSeconds"] = grace
    if inits:
        spec["initContainers"] = inits
    spec["containers"] = [main]
    if volumes:
        spec["volumes"] = list(volumes.values())
    return {"metadata": {"labels": labels(name)}, "spec": spec}


def job_pod(pattern: Pattern, name: str) -> Doc:
    """The pod template of a run-to-completion container: no ports, no probes."""
    template = pod(pattern, name)
    for key in ("ports", "readinessProbe", "livenessProbe", "startupProbe"):
        template["spec"]["containers"][0].pop(key, None)
    template["spec"]["restartPolicy"] = "OnFailure"
    return template
