"""Health probes from Python: ``python -m shared.kit.probe URL``, and the tests' probes.

* ``http://127.0.0.1:8080/health/ready``: healthy when it answers 2xx.
* ``grpc://127.0.0.1:8081``: healthy when the standard ``grpc.health.v1``
  service says SERVING.

Exits 0 when healthy within the timeout, 1 otherwise. The compose healthchecks
use ``compose/probe.sh`` instead (bash built-ins: no interpreter start-up every
few seconds; every service answers ``/health/ready`` over HTTP); this one is
for a server that speaks only gRPC.
"""

import sys
import urllib.error
import urllib.request

TIMEOUT_S = 2.0


def probe_http(url: str, timeout_s: float = TIMEOUT_S) -> bool:
    """True when ``url`` answers with a 2xx status."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return 200 <= response.status < 300
    except (urllib.error.URLError, OSError):
        return False


def probe_grpc(target: str, timeout_s: float = TIMEOUT_S) -> bool:
    """True when the gRPC health service at ``host:port`` says SERVING."""
    import grpc  # noqa: PLC0415 - only gRPC services pay for the import
    from grpc_health.v1 import health_pb2, health_pb2_grpc  # noqa: PLC0415

    with grpc.insecure_channel(target) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
        except grpc.RpcError:
            return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def probe(url: str, timeout_s: float = TIMEOUT_S) -> bool:
    """Probe an ``http://`` or ``grpc://`` URL."""
    if url.startswith("grpc://"):
        return probe_grpc(url.removeprefix("grpc://"), timeout_s)
    return probe_http(url, timeout_s)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m shared.kit.probe URL")
    sys.exit(0 if probe(sys.argv[1]) else 1)
