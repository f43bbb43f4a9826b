"""The REST face of the predictor: the protocol's ``/v2`` routes on a shared app.

Errors are the protocol's ``{"error": "..."}`` bodies: 404 for an unknown
model or version, 400 for a malformed request.
"""

import asyncio
from typing import Any

import orjson
from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response

from shared import __version__
from shared.kit.app import json_response
from shared.kit.metrics import stage
from shared.v2 import tensors
from shared.v2.grpc_server import EXTENSIONS, SERVER_NAME
from shared.v2.repository import ModelNotFound, ModelRepository, infer
from shared.v2.tensors import TensorError


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


def _model_path(suffix: str = "") -> list[str]:
    return [f"/v2/models/{{name}}{suffix}", f"/v2/models/{{name}}/versions/{{version}}{suffix}"]


def _decode_request(body: bytes) -> tuple[dict[str, Any], list[str], str | None]:
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise TensorError(f"the body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list):
        raise TensorError("the body must be an object with an 'inputs' list")
    inputs = dict(tensors.from_json(t, i) for i, t in enumerate(payload["inputs"]))
    outputs = payload.get("outputs") or []
    if not isinstance(outputs, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
    ):
        raise TensorError("'outputs' must be a list of objects with a 'name'")
    request_id = payload.get("id")
    return inputs, [o["name"] for o in outputs], request_id if isinstance(request_id, str) else None


def add_v2_routes(app: FastAPI, repository: ModelRepository, delay_s: float = 0.0) -> None:
    """Add the protocol's health, metadata and inference routes for ``repository``;
    ``delay_s`` (demonstrations only) makes every inference wait that long first."""

    async def server_live(_: Request) -> Response:
        return json_response({"live": True})

    async def server_ready(_: Request) -> Response:
        ready = bool(repository.models)
        return json_response({"ready": ready}, 200 if ready else 503)

    async def server_metadata(_: Request) -> Response:
        return json_response(
            {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}
        )

    async def model_metadata(request: Request) -> Response:
        try:
            model = repository.get(**request.path_params)
        except ModelNotFound as exc:
            return _error(404, str(exc))
        return json_response(repository.metadata(model))

    async def model_ready(request: Request) -> Response:
        try:
            model = repository.get(**request.path_params)
        except ModelNotFound as exc:
            return _error(404, str(exc))
        return json_response({"name": model.metadata.name, "ready": True})

    async def model_infer(request: Request) -> Response:
        if delay_s:
            await asyncio.sleep(delay_s)
        try:
            model = repository.get(**request.path_params)
            with stage("decode"):
                inputs, outputs, request_id = _decode_request(await request.body())
            with stage("inference"):
                results = infer(model, inputs, outputs)
        except ModelNotFound as exc:
            return _error(404, str(exc))
        except TensorError as exc:
            return _error(400, str(exc))
        answer: dict[str, Any] = {
            "model_name": model.metadata.name,
            "model_version": model.metadata.version,
            "outputs": [tensors.to_json(name, array) for name, array in results.items()],
        }
        if request_id is not None:
            answer["id"] = request_id
        return json_response(answer)

    routes = [
        ("/v2/health/live", server_live, "GET"),
        ("/v2/health/ready", server_ready, "GET"),
        ("/v2", server_metadata, "GET"),
        *((path, model_metadata, "GET") for path in _model_path()),
        *((path, model_ready, "GET") for path in _model_path("/ready")),
        *((path, model_infer, "POST") for path in _model_path("/infer")),
    ]
    for path, endpoint, method in routes:
        app.add_api_route(path, endpoint, methods=[method], tags=["Open Inference Protocol"])
