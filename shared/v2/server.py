"""The predictor: ``python -m shared.v2.server``.

Serves the models of the repository over the Open Inference Protocol, gRPC
on ``GRPC_PORT`` (with the standard ``grpc.health.v1`` service, for
healthchecks) and REST on ``PORT`` (plus ``/health/*`` and ``/metrics``), in
one process and one event loop. SIGTERM stops taking new calls, lets the ones
in flight finish (``GRACEFUL_SHUTDOWN_S``) and exits.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import grpc
import uvicorn
from fastapi import FastAPI
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import Field

from shared.app import create_app
from shared.health import Readiness
from shared.logs import configure_logging
from shared.metrics import record_model
from shared.serve import uvicorn_config
from shared.settings import ModelSettings, ServiceSettings, _EnvSettings
from shared.v2.grpc_server import InferenceServicer
from shared.v2.proto import inference_pb2_grpc as pb_grpc
from shared.v2.repository import ModelRepository
from shared.v2.rest import add_v2_routes

log = logging.getLogger("shared.v2.server")


class GrpcSettings(_EnvSettings):
    """Where a gRPC server listens (beside the HTTP port) and the largest message it takes."""

    grpc_port: int = Field(8081, ge=1, le=65535)
    grpc_max_message_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Larger gRPC messages are refused."
    )


class PredictorSettings(ServiceSettings, ModelSettings, GrpcSettings):
    """The predictor's settings: its two ports and the models it serves."""

    service_name: str = "predictor"
    models: str = Field("", description="Comma-separated name[:version]; empty serves every model.")
    delay_ms: float = Field(
        0,
        ge=0,
        description=(
            "For demonstrations only: wait this long before answering each inference, gRPC "
            "ModelInfer or REST infer (a slow model without burning CPU). Leave 0 in real use."
        ),
    )

    @property
    def model_names(self) -> list[str]:
        """The entries of ``MODELS``."""
        return [name.strip() for name in self.models.split(",") if name.strip()]


def build_app(repository: ModelRepository, settings: PredictorSettings) -> FastAPI:
    """The REST app of a predictor serving ``repository``."""
    readiness = Readiness()

    async def models_loaded() -> str | None:
        return None if repository.models else "no models loaded"

    readiness.add("models", models_loaded)
    app = create_app(
        settings,
        title="predictor",
        description="Open Inference Protocol (KServe V2) over REST; gRPC on GRPC_PORT.",
        readiness=readiness,
    )
    add_v2_routes(app, repository, delay_s=settings.delay_ms / 1000)
    return app


def build_grpc_server(repository: ModelRepository, settings: PredictorSettings) -> grpc.aio.Server:
    """A grpc.aio server with the inference and health services, not started."""
    servicer = InferenceServicer(repository, delay_s=settings.delay_ms / 1000)
    return grpc_server_for(servicer, settings, settings.host)


def grpc_server_for(
    servicer: pb_grpc.GRPCInferenceServiceServicer, settings: GrpcSettings, host: str
) -> grpc.aio.Server:
    """A grpc.aio server with ``servicer`` and the standard health service, not started."""
    options = [
        ("grpc.max_receive_message_length", settings.grpc_max_message_bytes),
        ("grpc.max_send_message_length", settings.grpc_max_message_bytes),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"{host}:{settings.grpc_port}")
    server.health = health_servicer  # type: ignore[attr-defined]
    return server


def serving(
    grpc_server: grpc.aio.Server, port: int, grace_s: float
) -> AbstractAsyncContextManager[None]:
    """Serve ``grpc_server`` for the life of the block (an app's lifespan), then drain it.

    Health says SERVING once it listens, NOT_SERVING when the block ends; calls in
    flight get ``grace_s`` to finish.
    """

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await grpc_server.start()
        await grpc_server.health.set("", health_pb2.HealthCheckResponse.SERVING)  # type: ignore[attr-defined]
        log.info("gRPC listening on port %d", port)
        try:
            yield
        finally:
            await grpc_server.health.enter_graceful_shutdown()  # type: ignore[attr-defined]
            await grpc_server.stop(grace_s)

    return lifespan()


async def serve(settings: PredictorSettings) -> None:
    """Load the models, serve gRPC and REST until a stop signal, then drain."""
    repository = ModelRepository.load(
        settings.model_dir, settings.model_names, settings.intra_op_threads
    )
    for model in repository.models.values():
        record_model(model.metadata.name, model.metadata.version)
    if settings.delay_ms:
        log.warning(
            "DELAY_MS=%g: every inference waits that long (demonstrations only)", settings.delay_ms
        )
    grpc_server = build_grpc_server(repository, settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with serving(grpc_server, settings.grpc_port, settings.graceful_shutdown_s):
            yield

    app = build_app(repository, settings)
    app.router.lifespan_context = lifespan
    await uvicorn.Server(uvicorn_config(app, settings)).serve()


def main() -> None:
    """Command-line entry point."""
    settings = PredictorSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_flush_interval_s)
    import uvloop  # noqa: PLC0415 - only the server process needs it

    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
