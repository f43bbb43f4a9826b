"""serial api: models in a chain, each on its own predictor, the next chosen by the last.

    gate (iris-gate) ---- outlier ----> rejected: nothing else is asked
      | inlier
    classifier (iris) ---- sure (top probability >= CONFIDENT_AT) ----> its answer
      | unsure, and its best guess is one the specialist knows
    specialist (iris-specialist) ----> the classifier's answer, that pair re-split

The rows of one request each take their own path, but each stage is called
once, with the rows that reach it. One deadline (``REQUEST_TIMEOUT_S``)
covers the whole chain (:class:`shared.chain.Chain`): a slow stage leaves less
time for the next, and a stage that misses it is a 504 naming the stage. Each
prediction carries its ``path``; the answer carries each stage's time.
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from shared.app import add_hot_route, add_model_route, create_app, json_response
from shared.chain import Chain
from shared.health import Readiness
from shared.metrics import stage
from shared.model import ModelError
from shared.schemas import PredictRequest, decode_rows, prediction_body
from shared.settings import ServiceSettings
from shared.v2.peers import (
    ModelPeer,
    PeerCallSettings,
    check_same_inputs,
    composite_metadata,
    composite_version,
    connected,
)

OUTLIER = -1


class Settings(ServiceSettings, PeerCallSettings):
    """The api's settings: the three stages' models and predictors, the deadline, the routing."""

    model_dir: Path = Field(Path("/models"), description="Model repository (metadata only).")
    max_instances: int = Field(1000, ge=1, description="Rows one request may carry.")
    chain_name: str = Field("iris-chain", description="model_name in the answers.")
    gate_model: str = "iris-gate"
    classifier_model: str = "iris"
    specialist_model: str = "iris-specialist"
    predictor_gate_url: str = Field(description="host:port of the gate's predictor (gRPC).")
    predictor_classifier_url: str = Field(description="host:port of the classifier's predictor.")
    predictor_specialist_url: str = Field(description="host:port of the specialist's predictor.")
    request_timeout_s: float = Field(1.0, gt=0, description="Deadline of the whole chain.")
    confident_at: float = Field(
        0.9, gt=0, le=1, description="Classifier probability from which the specialist is skipped."
    )


settings = Settings()
gate = ModelPeer.from_repository(
    "gate", settings.predictor_gate_url, settings.model_dir, settings.gate_model, task="anomaly"
)
classifier = ModelPeer.from_repository(
    "classifier", settings.predictor_classifier_url, settings.model_dir, settings.classifier_model
)
specialist = ModelPeer.from_repository(
    "specialist", settings.predictor_specialist_url, settings.model_dir, settings.specialist_model
)
STAGES = (gate, classifier, specialist)
check_same_inputs(STAGES)
LABELS = classifier.metadata.labels
if not set(specialist.metadata.labels) <= set(LABELS):
    raise ModelError(
        f"the specialist's classes {specialist.metadata.labels} are not all among the "
        f"classifier's {LABELS}"
    )
#: The classifier's columns of the classes the specialist tells apart, in the specialist's order.
PAIR = [LABELS.index(label) for label in specialist.metadata.labels]
VERSION = composite_version(STAGES)

readiness = Readiness()
for peer in STAGES:
    readiness.add(peer.role, peer.check_ready)


@asynccontextmanager
async def lifespan(_: FastAPI) -> AsyncIterator[None]:
    """One channel per stage's predictor for the life of the process."""
    async with connected(STAGES, settings.request_timeout_s, settings):
        yield


app = create_app(
    settings,
    title="serial",
    description="A chain of models on their own predictors: outlier gate, classifier, specialist.",
    readiness=readiness,
    lifespan=lifespan,
)


class SerialPrediction(BaseModel):
    """One row's answer and the stages it went through; label null when the gate rejected it."""

    label: str | None
    probabilities: dict[str, float] | None
    path: list[str]
    gate_score: float = Field(description="The gate's outlier score: below 0 is an outlier.")


class StageTime(BaseModel):
    """One stage's call: its model, how many rows it was asked about, how long it took."""

    stage: str
    model: str
    rows: int
    ms: float


class SerialResponse(BaseModel):
    """The answers in the order of the instances, the chain's name and version, stage times."""

    predictions: list[SerialPrediction]
    model_name: str
    model_version: str
    stages: list[StageTime]


def resplit(probabilities: np.ndarray, specialist_probabilities: np.ndarray) -> np.ndarray:
    """The classifier's probabilities with the specialist's pair re-split by the specialist.

    The pair keeps the probability mass the classifier gave it; the specialist decides
    how it divides: P(c) = P_classifier(pair) * P_specialist(c) for c in the pair.
    """
    combined = probabilities.copy()
    mass = probabilities[:, PAIR].sum(axis=1, keepdims=True)
    combined[:, PAIR] = mass * specialist_probabilities
    return combined


async def ask(
    chain: Chain, peer: ModelPeer, rows: np.ndarray, outputs: list[str]
) -> dict[str, np.ndarray]:
    """Stage ``peer.role`` of ``chain``: ``peer``'s model on ``rows``, in the time left."""
    return await chain.call(
        peer.role,
        lambda left_s: peer.infer(rows, outputs, left_s),
        model=peer.ref,
        rows=len(rows),
    )


async def predict(request: Request) -> Response:
    """Predict each instance through the chain; each answer says which stages it passed."""
    with stage("decode"):
        rows = decode_rows(await request.body(), gate.metadata, settings.max_instances)
    chain = Chain(settings.request_timeout_s)
    paths = [["gate"] for _ in range(len(rows))]

    verdict = await ask(chain, gate, rows, ["label", "scores"])
    inliers = np.flatnonzero(verdict["label"][:, 0] != OUTLIER)
    probabilities = np.zeros((len(rows), len(LABELS)), dtype=np.float32)
    if inliers.size:
        first = (await ask(chain, classifier, rows[inliers], ["probabilities"]))["probabilities"]
        probabilities[inliers] = first
        for i in inliers:
            paths[i].append("classifier")
        unsure = inliers[
            (first.max(axis=1) < settings.confident_at) & np.isin(first.argmax(axis=1), PAIR)
        ]
        if unsure.size:
            second = await ask(chain, specialist, rows[unsure], ["probabilities"])
            probabilities[unsure] = resplit(probabilities[unsure], second["probabilities"])
            for i in unsure:
                paths[i].append("specialist")
    return json_response(
        answer_body(probabilities, inliers, paths, verdict["scores"][:, 0], chain.timings)
    )


def answer_body(
    probabilities: np.ndarray,
    inliers: np.ndarray,
    paths: list[list[str]],
    scores: np.ndarray,
    timings: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``/predict`` answer: rejected rows have no label, every row its path and score."""
    accepted = prediction_body(classifier.metadata, probabilities[inliers])["predictions"]
    predictions: list[dict[str, Any]] = [
        {"label": None, "probabilities": None} for _ in range(len(paths))
    ]
    for i, prediction in zip(inliers.tolist(), accepted, strict=True):
        predictions[i] = prediction
    for prediction, path, score in zip(predictions, paths, scores.tolist(), strict=True):
        prediction["path"] = path
        prediction["gate_score"] = round(score, 6)
    return {
        "predictions": predictions,
        "model_name": settings.chain_name,
        "model_version": VERSION,
        "stages": timings,
    }


add_hot_route(app, "/predict", predict, request_model=PredictRequest, response_model=SerialResponse)


async def describe_chain() -> dict[str, Any]:
    """The chain: name, version, routing settings and each stage's model metadata (by stage)."""
    return composite_metadata(
        settings.chain_name,
        STAGES,
        confident_at=settings.confident_at,
        request_timeout_s=settings.request_timeout_s,
    )


add_model_route(app, describe_chain, response_model=None)
