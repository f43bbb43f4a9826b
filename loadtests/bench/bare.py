"""The bare endpoints: the apis' server stack answering a fixed JSON body.

``app`` is built like every api (:func:`shared.kit.app.create_app`: uvicorn +
uvloop + httptools, request id, body limit, metrics, access log) with a hot
``/predict`` that reads the body and writes a prediction-shaped answer without
validating or predicting anything. ``serving overhead`` = web-single
requests/s / this endpoint's: what validation and inference cost.

``fastapi_app`` is the same answer from a plain FastAPI route with none of the
house conventions, for what those conventions cost (the ``framework`` ratio).

``raw_app`` (ASGI, under uvicorn) and ``rsgi_app`` (RSGI, granian's own interface) are the
same answer with no framework at all: the most a Python app gets from each server here,
beside nginx (the ``server floor`` ratios).
"""

from typing import Any

from fastapi import FastAPI, Request
from starlette.responses import Response

from shared.kit.app import add_hot_route, create_app
from shared.kit.schemas import PredictRequest, PredictResponse
from shared.kit.settings import ServiceSettings

BODY = (
    b'{"predictions":[{"label":"setosa","probabilities":{"setosa":0.980287,'
    b'"versicolor":0.019712,"virginica":1e-06}}],"model_name":"iris","model_version":"1"}'
)


async def predict(request: Request) -> Response:
    """Read the body and answer the same fixed prediction."""
    await request.body()
    return Response(BODY, media_type="application/json")


app = create_app(ServiceSettings(), title="bare", description="A fixed answer, same stack.")
add_hot_route(
    app, "/predict", predict, request_model=PredictRequest, response_model=PredictResponse
)

fastapi_app = FastAPI(title="bare-fastapi")
fastapi_app.add_api_route("/predict", predict, methods=["POST"])


HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def raw_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The fixed answer as a bare ASGI callable: read the body, write the answer."""
    if scope["type"] == "lifespan":  # startup, then shutdown: nothing to set up
        for stage in ("startup", "shutdown"):
            await receive()
            await send({"type": f"lifespan.{stage}.complete"})
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})


async def rsgi_app(scope: Any, protocol: Any) -> None:
    """The fixed answer as a bare RSGI app (granian's interface: no ASGI messages)."""
    await protocol()
    protocol.response_bytes(200, [("content-type", "application/json")], BODY)
