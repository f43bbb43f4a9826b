"""The predictor: ``python -m shared.v2.server``.

Serves the models of the repository, every version of each (``MODELS``; a
request without a version gets ``MODEL_VERSION``, else the highest), over the
Open Inference Protocol, gRPC on ``GRPC_PORT`` (with the standard
``grpc.health.v1`` service, for healthchecks) and REST on ``PORT`` (plus
``/health/*`` and ``/metrics``), in one process and one event loop. SIGTERM
first drains (``DRAIN_S``): readiness fails and the gRPC health service says
NOT_SERVING, so that callers move to other replicas, while every call is still
served; then it stops taking new calls, lets the ones in flight finish
(``GRACEFUL_SHUTDOWN_S``) and exits. Each gRPC connection is closed gracefully
after ``GRPC_MAX_CONNECTION_AGE_S``, so that callers look the replicas up
again and spread over new ones.
"""

import logging
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import grpc
from fastapi import FastAPI
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from pydantic import Field

from shared.kit.app import create_app
from shared.kit.health import Readiness
from shared.kit.logs import configure_logging
from shared.kit.metrics import record_model
from shared.kit.serve import server_for
from shared.kit.settings import ModelSettings, ServiceSettings, _EnvSettings
from shared.model.metadata import ModelError
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
    grpc_max_connection_age_s: float = Field(
        5.0,
        gt=0,
        description="Each client connection is closed gracefully after about this long: "
        "the client reconnects at once and looks the replicas up again, so that new "
        "replicas get calls within seconds.",
    )


#: How long calls in flight on a connection closed for its age may take to finish.
CONNECTION_AGE_GRACE_MS = 30_000


class PredictorSettings(ServiceSettings, ModelSettings, GrpcSettings):
    """The predictor's settings: its two ports and the models it serves."""

    service_name: str = "predictor"
    drain_s: float = Field(
        2.0,
        ge=0,
        description="After SIGTERM, fail readiness (gRPC health NOT_SERVING) but keep "
        "serving this long before stopping, so that callers move to other replicas first.",
    )
    models: str = Field(
        "",
        description="Comma-separated name (every version of it) or name:version; empty serves "
        "every model. A request without a version gets MODEL_VERSION (unset: the highest).",
    )
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
        ("grpc.max_connection_age_ms", int(settings.grpc_max_connection_age_s * 1000)),
        ("grpc.max_connection_age_grace_ms", CONNECTION_AGE_GRACE_MS),
    ]
    server = grpc.aio.server(options=options)
    pb_grpc.add_GRPCInferenceServiceServicer_to_server(servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    server.add_insecure_port(f"{host}:{settings.grpc_port}")
    server.health = health_servicer  # type: ignore[attr-defined]
    return server


def serving(
    grpc_server: grpc.aio.Server, port: int, grace_s: float, readiness: Readiness | None = None
) -> AbstractAsyncContextManager[None]:
    """Serve ``grpc_server`` for the life of the block (an app's lifespan), then stop it.

    Health says SERVING once it listens, NOT_SERVING when ``readiness`` drains (the
    service is stopping: callers that watch health, as :mod:`shared.v2.client` does,
    move away at once) or the block ends; calls in flight get ``grace_s`` to finish.
    """
    health_servicer = grpc_server.health  # type: ignore[attr-defined]
    if readiness is not None:
        readiness.on_drain(health_servicer.enter_graceful_shutdown)

    @asynccontextmanager
    async def lifespan() -> AsyncIterator[None]:
        await grpc_server.start()
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info("gRPC listening on port %d", port)
        try:
            yield
        finally:
            await health_servicer.enter_graceful_shutdown()
            await grpc_server.stop(grace_s)

    return lifespan()


async def serve(settings: PredictorSettings) -> None:
    """Load the models, serve gRPC and REST until a stop signal, then drain."""
    try:
        repository = ModelRepository.load(
            settings.model_dir,
            settings.model_names,
            settings.intra_op_threads,
            default_version=settings.model_version,
        )
    except ModelError as exc:
        log.critical("refusing to start: %s", exc)
        raise
    for model in repository.models.values():
        record_model(model.metadata.name, model.metadata.version, model.metadata.sha256)
    if settings.delay_ms:
        log.warning(
            "DELAY_MS=%g: every inference waits that long (demonstrations only)", settings.delay_ms
        )
    grpc_server = build_grpc_server(repository, settings)
    app = build_app(repository, settings)
    grpc_serving = serving(
        grpc_server, settings.grpc_port, settings.graceful_shutdown_s, app.state.readiness
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with grpc_serving:
            yield

    app.router.lifespan_context = lifespan
    await server_for(app, settings).serve()


def main() -> None:
    """Command-line entry point."""
    settings = PredictorSettings()
    configure_logging(settings.service_name, settings.log_level, settings.log_flush_interval_s)
    import uvloop  # noqa: PLC0415 - only the server process needs it

    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
