"""Models served by V2 predictor peers, as an api that calls several of them sees them.

    gate = ModelPeer.from_repository("gate", settings.predictor_gate_url, model_dir, "iris-gate")
    readiness.add("gate", gate.check_ready)
    async with connected([gate, ...], timeout_s=1.0):   # in the lifespan
        ...
    outputs = await gate.infer(rows, ["scores"], timeout_s=0.3)

The api reads each model's metadata (labels, feature names, tensor names,
version) from the model repository at start; the model itself runs only in
its predictor, which must serve that same version (:meth:`check_ready`).
"""

import asyncio
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from shared.kit.settings import ModelSettings
from shared.model.metadata import ModelError, ModelMetadata, load_metadata
from shared.serving.model import ServedModel
from shared.v2.client import V2Client
from shared.v2.coalesce import Coalescer, batchable
from shared.v2.replicas import ReplicaSettings
from shared.v2.rest_client import V2RestClient


class PeerCallSettings(ReplicaSettings):
    """How an api's calls to a predictor share the way (:mod:`shared.v2.coalesce`), spread
    over its replicas and are retried (:class:`ReplicaSettings`)."""

    peer_max_calls_in_flight: int = Field(
        1,
        ge=0,
        description="Calls to one peer at a time; requests arriving while that many are out "
        "share the next call. 0: every request makes its own call, however many are out.",
    )
    peer_max_batch_rows: int = Field(256, ge=1, description="Rows one shared call may carry.")


class PredictorPeerSettings(ModelSettings, PeerCallSettings):
    """An api's one predictor: the model it serves (:class:`ModelSettings`), where, how long."""

    predictor_url: str = Field(
        description="host:port of the predictor's gRPC endpoint; http://host:port for REST."
    )
    predictor_timeout_s: float = Field(1.0, gt=0, description="Deadline of one predictor call.")


def v2_client(
    url: str, timeout_s: float, peer: str, replicas: ReplicaSettings | None = None
) -> V2Client | V2RestClient:
    """The client for a predictor at ``url``: REST for ``http(s)://host:port``, else gRPC;
    ``replicas``: how its calls spread and retry."""
    if url.startswith(("http://", "https://")):
        return V2RestClient(url, timeout_s, peer, replicas)
    return V2Client(url, timeout_s, peer, replicas)


#: Where a call's outputs carry the version that answered (one entry per row, so that it
#: survives the split of a shared call like any output); see :meth:`ModelPeer.infer_versioned`.
ANSWERED_VERSION = "model_version answered"


class ModelPeer(ServedModel):
    """One model on one predictor: its metadata and, once connected, the client to call it
    (the :class:`shared.serving.model.ServedModel` of an api whose model runs elsewhere).

    A ``pinned`` peer asks for its metadata's version; an unpinned one names no version,
    so the predictor answers with its default (``MODEL_VERSION`` there: what a rolling
    update changes), and :meth:`infer_versioned` says which version that was.
    """

    def __init__(
        self,
        role: str,
        url: str,
        metadata: ModelMetadata,
        pinned: bool = True,
        model_dir: Path | None = None,
    ) -> None:
        self.role = role
        self.url = url
        self.metadata = metadata
        self.pinned = pinned
        self.model_dir = model_dir  # where the other versions' metadata is (unpinned peers)
        self.answered_version: str | None = None  # the version of the latest answer
        self.client: V2Client | V2RestClient | None = None
        self.coalescer: Coalescer | None = None

    @classmethod
    def from_repository(
        cls,
        role: str,
        url: str,
        model_dir: Path,
        model: str,
        task: str = "classification",
        *,
        version: str | None = None,
        pinned: bool = True,
    ) -> "ModelPeer":
        """Peer ``role`` at ``url`` serving ``model`` at ``version`` (None: the highest),
        which must do ``task``; ``pinned``: whether calls name that version."""
        metadata = load_metadata(model_dir, model, version)
        if metadata.task != task:
            raise ModelError(f"{role} model {model!r} does {metadata.task!r}, not {task!r}")
        return cls(role, url, metadata, pinned, model_dir)

    @classmethod
    def predictor(cls, settings: PredictorPeerSettings, follow: bool = False) -> "ModelPeer":
        """The peer ``predictor`` that ``settings`` describe (model, version, url).

        ``follow``: when ``settings`` name no version, let the predictor choose it (the
        api follows a rolling update of the predictors); the metadata read here is then
        the highest version's, whose inputs and labels every version shares (the
        predictor checks that).
        """
        return cls.from_repository(
            "predictor",
            settings.predictor_url,
            settings.model_dir,
            settings.model_name,
            version=settings.model_version,
            pinned=not follow or settings.model_version is not None,
        )

    @property
    def ref(self) -> str:
        """``name:version`` of the model."""
        return f"{self.metadata.name}:{self.metadata.version}"

    def connect(self, timeout_s: float, calls: PeerCallSettings | None = None) -> None:
        """Open the channel; calls get ``timeout_s`` unless they say otherwise, and share
        the way as ``calls`` says (the defaults of :class:`PeerCallSettings` when None)."""
        calls = calls or PeerCallSettings()
        self.client = v2_client(self.url, timeout_s, self.role, calls)
        if calls.peer_max_calls_in_flight and batchable(self.metadata):
            self.coalescer = Coalescer(
                self.role, self._call, calls.peer_max_calls_in_flight, calls.peer_max_batch_rows
            )

    async def close(self) -> None:
        """Close the channel (waits for calls in flight)."""
        if self.coalescer is not None:
            await self.coalescer.wait_closed()
        if self.client is not None:
            await self.client.close()

    async def check_ready(self) -> str | None:
        """Readiness: the predictor answers and serves the model at the expected version."""
        if self.client is None:
            return f"{self.role} client not started"
        if not await self.client.ready(self.metadata.name, self._version):
            served = f" v{self._version}" if self._version else ""
            return (
                f"{self.role} at {self.url} is unreachable or does not serve "
                f"{self.metadata.name}{served}"
            )
        return None

    @property
    def _version(self) -> str:
        """The version calls name: the metadata's when pinned, else none."""
        return self.metadata.version if self.pinned else ""

    async def infer(
        self, rows: np.ndarray, outputs: list[str], timeout_s: float | None = None
    ) -> dict[str, np.ndarray]:
        """Run the model on float32 ``rows``; 503/504 errors name :attr:`role`.

        Concurrent calls may share one predictor call (:mod:`shared.v2.coalesce`)."""
        answer = await self._infer(rows, outputs, timeout_s)
        answer.pop(ANSWERED_VERSION, None)
        return answer

    async def infer_versioned(
        self, rows: np.ndarray, outputs: list[str], timeout_s: float | None = None
    ) -> tuple[dict[str, np.ndarray], str]:
        """:meth:`infer`, and the model version that answered."""
        answer = await self._infer(rows, outputs, timeout_s)
        versions = answer.pop(ANSWERED_VERSION, None)
        if versions is None or not len(versions) or not versions[0]:
            return answer, self.metadata.version
        self.answered_version = str(versions[0])
        return answer, self.answered_version

    async def served_metadata(self) -> ModelMetadata:
        """The metadata of the version the predictor serves: the pinned one, or for an
        unpinned peer the version of the latest answer (one call of an example row first
        when nothing has answered yet), read from the model repository."""
        if self.pinned or self.model_dir is None:
            return self.metadata
        if self.answered_version is None:
            example = np.zeros([1, *(d or 1 for d in self.metadata.input.shape[1:])], np.float32)
            await self.infer_versioned(example, [self.metadata.outputs[0].name])
        version = self.answered_version or self.metadata.version
        if version == self.metadata.version:
            return self.metadata
        return load_metadata(self.model_dir, self.metadata.name, version)

    async def _infer(
        self, rows: np.ndarray, outputs: list[str], timeout_s: float | None
    ) -> dict[str, np.ndarray]:
        assert self.client is not None, "connect() before calling"
        if self.coalescer is None:
            return await self._call(rows, outputs, timeout_s)
        return await self.coalescer.infer(
            rows, outputs, self.client.timeout_s if timeout_s is None else timeout_s
        )

    async def _call(
        self, rows: np.ndarray, outputs: list[str], timeout_s: float | None
    ) -> dict[str, np.ndarray]:
        assert self.client is not None
        answered: dict[str, str] | None = None if self.pinned else {}
        answer = await self.client.infer(
            self.metadata.name,
            {self.metadata.input.name: rows},
            outputs,
            self._version,
            timeout_s,
            answered=answered,
        )
        if answered:
            answer[ANSWERED_VERSION] = np.full(len(rows), answered["model_version"])
        return answer


@asynccontextmanager
async def connected(
    peers: Iterable[ModelPeer], timeout_s: float, calls: PeerCallSettings | None = None
) -> AsyncIterator[None]:
    """Connect every peer for the life of the block (an api's lifespan); ``calls``: how
    their calls share the way (:class:`PeerCallSettings`)."""
    peers = list(peers)
    for peer in peers:
        peer.connect(timeout_s, calls)
    try:
        yield
    finally:
        await asyncio.gather(*(peer.close() for peer in peers))


def composite_version(peers: Sequence[ModelPeer]) -> str:
    """The version of a model made of several: ``name:version`` of each, joined by ``+``."""
    return "+".join(peer.ref for peer in peers)


def composite_metadata(name: str, peers: Sequence[ModelPeer], **details: Any) -> dict[str, Any]:
    """What ``GET /model`` says about a model made of several: name, version, ``details``
    and each part's model metadata, by role."""
    return {
        "name": name,
        "version": composite_version(peers),
        **details,
        "models": {peer.role: peer.metadata.model_dump() for peer in peers},
    }


def check_same_inputs(peers: Sequence[ModelPeer]) -> None:
    """Raise :class:`ModelError` unless every peer's model takes the same rows."""
    first = peers[0].metadata
    for peer in peers[1:]:
        other = peer.metadata
        if (other.input.shape, other.feature_names) != (first.input.shape, first.feature_names):
            raise ModelError(
                f"{peer.role} model {other.name!r} takes {other.feature_names or other.input.shape}"
                f"; {peers[0].role} model {first.name!r} takes "
                f"{first.feature_names or first.input.shape}"
            )


def primary_and_second(
    settings: PredictorPeerSettings,
    role: str,
    url: str,
    model: str,
    version: str | None,
    *,
    why: str,
) -> tuple[ModelPeer, ModelPeer]:
    """The primary predictor ``settings`` describe, and peer ``role`` at ``url`` serving
    ``model`` at ``version`` (None: the highest) beside it (a canary, a shadow's candidate).

    :class:`ModelError` unless the second takes the primary's rows and answers its
    classes; ``why`` says what would break otherwise.
    """
    primary = ModelPeer.predictor(settings)
    second = ModelPeer.from_repository(role, url, settings.model_dir, model, version=version)
    check_same_inputs([primary, second])
    if second.labels != primary.labels:
        raise ModelError(
            f"{role} {second.ref} has classes {second.labels}, "
            f"primary {primary.ref} has {primary.labels}: {why}"
        )
    return primary, second
