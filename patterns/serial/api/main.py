"""serial api: models in a chain, each on its own predictor, the next chosen by the last.

    gate (iris-gate) ---- outlier ----> rejected: nothing else is asked
      | inlier
    classifier (iris) ---- sure (top probability >= CONFIDENT_AT) ----> its answer
      | unsure, and its best guess is one the specialist knows
    specialist (iris-specialist) ----> the classifier's answer, that pair re-split

The rows of one request each take their own path, but each stage is called
once, with the rows that reach it. One deadline (``REQUEST_TIMEOUT_S``)
covers the whole chain (:class:`shared.mechanisms.chain.Chain`): a slow stage leaves less
time for the next, and a stage that misses it is a 504 naming the stage. Each
prediction carries its ``path``; the answer carries each stage's time.
"""

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import Response

from shared.kit.app import add_hot_route, add_model_route, create_app, json_response
from shared.kit.metrics import stage
from shared.kit.schemas import PredictRequest, decode_rows, prediction_body
from shared.kit.settings import ServiceSettings
from shared.mechanisms.chain import Chain
from shared.model.metadata import ModelError
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


@dataclass
class ChainModels:
    """The three stages' peers, checked to fit together, and what the routing derives."""

    gate: ModelPeer
    classifier: ModelPeer
    specialist: ModelPeer

    @classmethod
    def from_settings(cls) -> "ChainModels":
        """The stages ``settings`` name; :class:`ModelError` unless they fit together."""
        repo = settings.model_dir
        models = cls(
            gate=ModelPeer.from_repository(
                "gate", settings.predictor_gate_url, repo, settings.gate_model, task="anomaly"
            ),
            classifier=ModelPeer.from_repository(
                "classifier", settings.predictor_classifier_url, repo, settings.classifier_model
            ),
            specialist=ModelPeer.from_repository(
                "specialist", settings.predictor_specialist_url, repo, settings.specialist_model
            ),
        )
        check_same_inputs(models.stages)
        if not set(models.specialist.labels) <= set(models.labels):
            raise ModelError(
                f"the specialist's classes {models.specialist.labels} are not all among the "
                f"classifier's {models.labels}"
            )
        return models

    @property
    def stages(self) -> tuple[ModelPeer, ModelPeer, ModelPeer]:
        """The peers in the chain's order."""
        return (self.gate, self.classifier, self.specialist)

    @property
    def labels(self) -> list[str]:
        """The classes of the answers: the classifier's."""
        return self.classifier.labels

    @functools.cached_property
    def pair(self) -> list[int]:
        """The classifier's columns of the classes the specialist tells apart, in its order."""
        return [self.labels.index(label) for label in self.specialist.labels]

    @functools.cached_property
    def version(self) -> str:
        """The chain's version: each stage's ``name:version``."""
        return composite_version(self.stages)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One channel per stage's predictor for the life of the process."""
    app.state.chain = chain = ChainModels.from_settings()
    for peer in chain.stages:
        app.state.readiness.add(peer.role, peer.check_ready)
    async with connected(chain.stages, settings.request_timeout_s, settings):
        yield


app = create_app(
    settings,
    title="serial",
    description="A chain of models on their own predictors: outlier gate, classifier, specialist.",
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


def resplit(
    pair: list[int], probabilities: np.ndarray, specialist_probabilities: np.ndarray
) -> np.ndarray:
    """The classifier's probabilities with the specialist's pair re-split by the specialist.

    The pair keeps the probability mass the classifier gave it; the specialist decides
    how it divides: P(c) = P_classifier(pair) * P_specialist(c) for c in the pair.
    """
    combined = probabilities.copy()
    mass = probabilities[:, pair].sum(axis=1, keepdims=True)
    combined[:, pair] = mass * specialist_probabilities
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
    models: ChainModels = request.app.state.chain
    with stage("decode"):
        rows = decode_rows(await request.body(), models.gate.metadata, settings.max_instances)
    chain = Chain(settings.request_timeout_s)
    paths = [["gate"] for _ in range(len(rows))]

    verdict = await ask(chain, models.gate, rows, ["label", "scores"])
    inliers = np.flatnonzero(verdict["label"][:, 0] != OUTLIER)
    probabilities = np.zeros((len(rows), len(models.labels)), dtype=np.float32)
    if inliers.size:
        asked = await ask(chain, models.classifier, rows[inliers], ["probabilities"])
        first = asked["probabilities"]
        probabilities[inliers] = first
        for i in inliers:
            paths[i].append("classifier")
        unsure = inliers[
            (first.max(axis=1) < settings.confident_at) & np.isin(first.argmax(axis=1), models.pair)
        ]
        if unsure.size:
            second = await ask(chain, models.specialist, rows[unsure], ["probabilities"])
            probabilities[unsure] = resplit(
                models.pair, probabilities[unsure], second["probabilities"]
            )
            for i in unsure:
                paths[i].append("specialist")
    return json_response(
        answer_body(
            models, probabilities, inliers, paths, verdict["scores"][:, 0], timings=chain.timings
        )
    )


def answer_body(
    models: ChainModels,
    probabilities: np.ndarray,
    inliers: np.ndarray,
    paths: list[list[str]],
    scores: np.ndarray,
    *,
    timings: list[dict[str, Any]],
) -> dict[str, Any]:
    """The ``/predict`` answer: rejected rows have no label, every row its path and score."""
    accepted = prediction_body(models.classifier.metadata, probabilities[inliers])["predictions"]
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
        "model_version": models.version,
        "stages": timings,
    }


add_hot_route(app, "/predict", predict, request_model=PredictRequest, response_model=SerialResponse)


async def describe_chain() -> dict[str, Any]:
    """The chain: name, version, routing settings and each stage's model metadata (by stage)."""
    return composite_metadata(
        settings.chain_name,
        app.state.chain.stages,
        confident_at=settings.confident_at,
        request_timeout_s=settings.request_timeout_s,
    )


add_model_route(app, describe_chain, response_model=None)
