"""The bare endpoints: the apis' server stack answering a fixed JSON body.

``app`` is built like every api (:func:`shared.kit.app.create_app`: uvicorn +
uvloop + httptools, request id, body limit, metrics, access log) with a hot
``/predict`` that reads the body and writes a prediction-shaped answer without
validating or predicting anything. ``serving overhead`` = web-single
requests/s / this endpoint's: what validation and inference cost.

``fastapi_app`` is the same answer from a plain FastAPI route with none of the
house conventions, for what those conventions cost (the ``framework`` ratio).
"""

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
