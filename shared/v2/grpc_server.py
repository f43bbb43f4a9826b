"""The gRPC face of the predictor: ``inference.GRPCInferenceService`` over grpc.aio.

Errors follow the protocol: NOT_FOUND for an unknown model or version,
INVALID_ARGUMENT for a malformed request (with a message naming the tensor),
the code of a :class:`StatusError` when a servicer raises one, INTERNAL
(message only, no trace) for anything unexpected. Every call is
counted and timed in ``mlsp_grpc_requests_total`` /
``mlsp_grpc_request_duration_seconds``, and carries the caller's
``x-request-id`` into the log lines it writes.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from prometheus_client import Counter, Histogram

from shared import __version__
from shared.kit.logs import request_id_var
from shared.kit.metrics import LATENCY_BUCKETS, stage
from shared.v2 import tensors
from shared.v2.proto import inference_pb2 as pb
from shared.v2.proto import inference_pb2_grpc as pb_grpc
from shared.v2.replicas import PREVIOUS_ATTEMPTS_KEY
from shared.v2.repository import ModelNotFound, ModelRepository, infer
from shared.v2.tensors import TensorError

log = logging.getLogger("shared.v2.grpc")
access_log = logging.getLogger("access")

GRPC_REQUESTS = Counter("mlsp_grpc_requests", "gRPC calls answered.", ["method", "code"])
GRPC_LATENCY = Histogram(
    "mlsp_grpc_request_duration_seconds",
    "Time to answer a gRPC call.",
    ["method"],
    buckets=LATENCY_BUCKETS,
)
SERVER_NAME = "mlsp-predictor"
EXTENSIONS: list[str] = []


class StatusError(Exception):
    """An error a servicer answers with its own gRPC status code and message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Request = TypeVar("Request")
Response = TypeVar("Response")
Servicer = TypeVar("Servicer", bound=pb_grpc.GRPCInferenceServiceServicer)


def _request_context(context: grpc.aio.ServicerContext) -> str | None:
    """The caller's request id; says how many attempts came before this call (a retry by
    the caller's channel) in the answer's trailing metadata, for the caller to count."""
    request_id = None
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id":
            request_id = value if isinstance(value, str) else value.decode()
        elif key == "grpc-previous-rpc-attempts":
            context.set_trailing_metadata(((PREVIOUS_ATTEMPTS_KEY, str(value)),))
    return request_id


def rpc(
    method: Callable[[Servicer, Request, grpc.aio.ServicerContext], Awaitable[Response]],
) -> Callable[[Servicer, Request, grpc.aio.ServicerContext], Awaitable[Response]]:
    """Count, time and map errors of one RPC method to the protocol's status codes."""
    name = method.__name__

    async def wrapped(
        self: Servicer, request: Request, context: grpc.aio.ServicerContext
    ) -> Response:
        started = time.perf_counter()
        token = request_id_var.set(_request_context(context))
        code = grpc.StatusCode.OK
        try:
            return await method(self, request, context)
        except ModelNotFound as exc:
            code = grpc.StatusCode.NOT_FOUND
            await context.abort(code, str(exc))
        except TensorError as exc:
            code = grpc.StatusCode.INVALID_ARGUMENT
            await context.abort(code, str(exc))
        except StatusError as exc:
            code = exc.code
            await context.abort(code, exc.message)
        except grpc.aio.AbortError:
            raise
        except Exception:
            code = grpc.StatusCode.INTERNAL
            log.exception("unhandled error in %s", name)
            await context.abort(code, "internal error; the server log has the details")
        finally:
            elapsed = time.perf_counter() - started
            GRPC_REQUESTS.labels(name, code.name).inc()
            GRPC_LATENCY.labels(name).observe(elapsed)
            level = logging.INFO if name == "ModelInfer" else logging.DEBUG
            if access_log.isEnabledFor(level):
                access_log.log(
                    level,
                    "%s %s",
                    name,
                    code.name,
                    extra={"grpc_code": code.name, "duration_ms": round(elapsed * 1000, 3)},
                )
            request_id_var.reset(token)
        raise AssertionError("unreachable: abort raises")  # pragma: no cover

    wrapped.__name__ = name
    wrapped.__doc__ = method.__doc__
    return wrapped


class InferenceServicer(pb_grpc.GRPCInferenceServiceServicer):
    """Serves the models of a :class:`ModelRepository`.

    ``delay_s`` (demonstrations only) makes every ModelInfer wait that long before answering.
    """

    def __init__(self, repository: ModelRepository, delay_s: float = 0.0) -> None:
        self.repository = repository
        self.delay_s = delay_s

    @rpc
    async def ServerLive(self, request: pb.ServerLiveRequest, context) -> pb.ServerLiveResponse:  # noqa: N802
        """The process answers."""
        return pb.ServerLiveResponse(live=True)

    @rpc
    async def ServerReady(self, request: pb.ServerReadyRequest, context) -> pb.ServerReadyResponse:  # noqa: N802
        """Every model is loaded (they are, once the server listens)."""
        return pb.ServerReadyResponse(ready=bool(self.repository.models))

    @rpc
    async def ModelReady(self, request: pb.ModelReadyRequest, context) -> pb.ModelReadyResponse:  # noqa: N802
        """The named model (and version, when given) is served."""
        self.repository.get(request.name, request.version)
        return pb.ModelReadyResponse(ready=True)

    @rpc
    async def ServerMetadata(  # noqa: N802
        self, request: pb.ServerMetadataRequest, context
    ) -> pb.ServerMetadataResponse:
        """Name, version and protocol extensions of this server."""
        return pb.ServerMetadataResponse(
            name=SERVER_NAME, version=__version__, extensions=EXTENSIONS
        )

    @rpc
    async def ModelMetadata(  # noqa: N802
        self, request: pb.ModelMetadataRequest, context
    ) -> pb.ModelMetadataResponse:
        """Versions, platform and tensors of one model."""
        metadata = self.repository.metadata(self.repository.get(request.name, request.version))
        return pb.ModelMetadataResponse(
            name=metadata["name"],
            versions=metadata["versions"],
            platform=metadata["platform"],
            inputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in metadata["inputs"]],
            outputs=[pb.ModelMetadataResponse.TensorMetadata(**t) for t in metadata["outputs"]],
        )

    @rpc
    async def ModelInfer(self, request: pb.ModelInferRequest, context) -> pb.ModelInferResponse:  # noqa: N802
        """Run a model. Answers in raw contents when the request came in raw contents."""
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        model = self.repository.get(request.model_name, request.model_version)
        raw = request.raw_input_contents
        if raw and len(raw) != len(request.inputs):
            raise TensorError(f"{len(raw)} raw_input_contents for {len(request.inputs)} inputs")
        with stage("decode"):
            inputs = {
                tensor.name: tensors.from_grpc(tensor, raw[i] if raw else None)
                for i, tensor in enumerate(request.inputs)
            }
        with stage("inference"):
            results = infer(model, inputs, [o.name for o in request.outputs])
        response = pb.ModelInferResponse(
            model_name=model.metadata.name, model_version=model.metadata.version, id=request.id
        )
        for name, array in results.items():
            tensor, data = tensors.to_grpc(name, array, raw=bool(raw))
            response.outputs.append(tensor)
            if data is not None:
                response.raw_output_contents.append(data)
        return response
