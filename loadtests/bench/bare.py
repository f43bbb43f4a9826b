"""The bare endpoint: the same server stack as the apis, answering a fixed JSON body.

What a request costs before any validation or inference: uvicorn + uvloop +
httptools + FastAPI, one process, the body read and a prediction-shaped answer
written. ``serving overhead`` = web-single requests/s / this endpoint's.
"""

from fastapi import FastAPI, Request
from starlette.responses import Response

BODY = (
    b'{"predictions":[{"label":"setosa","probabilities":{"setosa":0.980287,'
    b'"versicolor":0.019712,"virginica":1e-06}}],"model_name":"iris","model_version":"1"}'
)

app = FastAPI(title="bare")


@app.post("/predict")
async def predict(request: Request) -> Response:
    """Read the body and answer the same fixed prediction."""
    await request.body()
    return Response(BODY, media_type="application/json")
