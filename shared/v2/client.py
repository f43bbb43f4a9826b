"""Call a V2 predictor over gRPC from an async service.

One :class:`V2Client` per peer, made at start and closed at shutdown: it keeps
one channel (an HTTP/2 connection to each replica, reused by every call), puts a
deadline on every call, passes the request id along, and turns the predictor's
failures into the errors a client of the api can act on: 503 (down: connection
refused, no address) or 504 (too slow), each naming the peer. The channel spreads
calls over the peer's replicas and retries a call that failed as UNAVAILABLE once
on another (:mod:`shared.v2.replicas`), and reconnects by itself, with a short
backoff, when a predictor comes back.
"""

import json
import logging
import time
from typing import Any

import grpc
import numpy as np
from prometheus_client import Histogram

from shared.kit.errors import (
    DependencyTimeout,
    DependencyUnavailable,
    InvalidInput,
    PayloadTooLarge,
    ServiceError,
)
from shared.kit.logs import request_id_var
from shared.kit.metrics import LATENCY_BUCKETS
from shared.v2.proto import inference_pb2 as pb
from shared.v2.proto import inference_pb2_grpc as pb_grpc
from shared.v2.replicas import (
    OUTBOUND_RETRIES,
    PREVIOUS_ATTEMPTS_KEY,
    ReplicaSettings,
    grpc_service_config,
)
from shared.v2.tensors import DTYPES, datatype_of

log = logging.getLogger("shared.v2.client")

OUTBOUND_LATENCY = Histogram(
    "mlsp_outbound_duration_seconds",
    "Time of calls to other services, by peer and outcome.",
    ["peer", "outcome"],
    buckets=LATENCY_BUCKETS,
)

# Reconnect quickly after the peer restarts (gRPC's defaults back off up to two minutes).
RECONNECT_OPTIONS = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
    ("grpc.keepalive_time_ms", 30_000),
]
#: A call whose request is larger than this is not retried (gRPC keeps it to replay it).
RETRY_BUFFER_BYTES = 8 * 1024 * 1024


def channel_target(target: str) -> str:
    """``target`` as a gRPC target: ``host:port`` through the DNS resolver, so that every
    replica's address is found; a target naming its resolver (``ipv4:``, ``dns:///``) as is."""
    if "://" in target or target.startswith(("ipv4:", "ipv6:", "unix:")):
        return target
    return f"dns:///{target}"


def channel_options(settings: ReplicaSettings) -> list[tuple[str, str | int]]:
    """The options of a channel to a peer: its service config, retries on, how often
    DNS may be asked again, fast reconnects."""
    return [
        ("grpc.service_config", json.dumps(grpc_service_config(settings))),
        ("grpc.service_config_disable_resolution", 1),  # the config is ours, not DNS's
        ("grpc.enable_retries", 1 if settings.peer_retries else 0),
        ("grpc.per_rpc_retry_buffer_size", RETRY_BUFFER_BYTES),
        ("grpc.dns_min_time_between_resolutions_ms", int(settings.peer_resolve_interval_s * 1000)),
        *RECONNECT_OPTIONS,
    ]


def previous_attempts(metadata: grpc.aio.Metadata | None) -> int:
    """How many attempts came before the call the predictor answered (0: none, or a
    predictor that does not say)."""
    for key, value in metadata or ():
        if key == PREVIOUS_ATTEMPTS_KEY and str(value).isdigit():
            return int(value)
    return 0


class V2Client:
    """An Open Inference Protocol client for one predictor (``host:port``, any number of
    replicas behind the name); ``replicas``: how calls spread and retry (the defaults of
    :class:`ReplicaSettings` when None)."""

    def __init__(
        self,
        target: str,
        timeout_s: float,
        peer: str = "predictor",
        replicas: ReplicaSettings | None = None,
    ) -> None:
        self.target = target
        self.timeout_s = timeout_s
        self.peer = peer
        options = channel_options(replicas or ReplicaSettings())
        self.channel = grpc.aio.insecure_channel(channel_target(target), options=options)
        self.stub = pb_grpc.GRPCInferenceServiceStub(self.channel)
        self._retries = OUTBOUND_RETRIES.labels(peer)

    async def close(self) -> None:
        """Close the channel (waits for calls in flight)."""
        await self.channel.close()

    def _metadata(self) -> tuple[tuple[str, str], ...]:
        request_id = request_id_var.get()
        return (("x-request-id", request_id),) if request_id else ()

    def _count_retries(self, metadata: grpc.aio.Metadata | None) -> None:
        retried = previous_attempts(metadata)
        if retried:
            self._retries.inc(retried)

    def _error(self, exc: grpc.aio.AioRpcError, timeout_s: float | None = None) -> ServiceError:
        code = exc.code()
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            waited = self.timeout_s if timeout_s is None else timeout_s
            return DependencyTimeout.waited(self.peer, waited)
        if code == grpc.StatusCode.UNAVAILABLE:
            log.warning("%s at %s is unavailable: %s", self.peer, self.target, exc.details())
            return DependencyUnavailable.peer_down(self.peer)
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidInput(f"{self.peer} refused the input: {exc.details()}")
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
            return PayloadTooLarge(f"{self.peer} refused the input as too large: {exc.details()}")
        log.error("%s answered %s: %s", self.peer, code.name, exc.details())
        return DependencyUnavailable(f"{self.peer} failed: {code.name}")

    async def ready(self, model: str | None = None, version: str = "") -> bool:
        """Server (or model) readiness; False when the predictor is down or says not ready."""
        try:
            if model is None:
                answer = await self.stub.ServerReady(
                    pb.ServerReadyRequest(), timeout=self.timeout_s
                )
            else:
                answer = await self.stub.ModelReady(
                    pb.ModelReadyRequest(name=model, version=version), timeout=self.timeout_s
                )
        except grpc.aio.AioRpcError:
            return False
        return answer.ready

    async def metadata(self, model: str) -> pb.ModelMetadataResponse:
        """The model's V2 metadata."""
        try:
            return await self.stub.ModelMetadata(
                pb.ModelMetadataRequest(name=model), timeout=self.timeout_s
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from None

    async def infer(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        outputs: list[str],
        version: str = "",
        timeout_s: float | None = None,
        *,
        parameters: dict[str, Any] | None = None,
        answered: dict[str, str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs``; returns the requested ``outputs`` as numpy arrays.

        ``timeout_s`` overrides the client's deadline for this call (e.g. what is left
        of a request's deadline when several calls share it). When ``parameters`` is a
        dict, the answer's parameters (e.g. a server's own stage times) are put in it;
        when ``answered`` is, the ``model_version`` that answered.
        """
        deadline = self.timeout_s if timeout_s is None else timeout_s
        request = pb.ModelInferRequest(model_name=model, model_version=version)
        for name, array in inputs.items():
            request.inputs.add(name=name, datatype=datatype_of(array), shape=array.shape)
            request.raw_input_contents.append(np.ascontiguousarray(array).tobytes())
        for name in outputs:
            request.outputs.add(name=name)
        started = time.perf_counter()
        outcome = "ok"
        try:
            call = self.stub.ModelInfer(request, timeout=deadline, metadata=self._metadata())
            answer = await call
            self._count_retries(await call.trailing_metadata())
        except grpc.aio.AioRpcError as exc:
            outcome = exc.code().name.lower()
            self._count_retries(exc.trailing_metadata())
            raise self._error(exc, deadline) from None
        finally:
            OUTBOUND_LATENCY.labels(self.peer, outcome).observe(time.perf_counter() - started)
        if answered is not None:
            answered["model_version"] = answer.model_version
        if parameters is not None:
            for key, value in answer.parameters.items():
                choice = value.WhichOneof("parameter_choice")
                if choice is not None:
                    parameters[key] = getattr(value, choice)
        return {
            tensor.name: np.frombuffer(raw, dtype=DTYPES[tensor.datatype]).reshape(tensor.shape)
            for tensor, raw in zip(answer.outputs, answer.raw_output_contents, strict=True)
        }
