"""A model served by a V2 predictor, as the api in front of it sees it.

    class Settings(ServiceSettings, RemoteModelSettings): ...

    model = RemoteModel.from_settings(settings)
    readiness.add("predictor", model.check_ready)
    model.connect()                            # in the lifespan, then: await model.close()
    probabilities = await model.predict_proba(rows)

The api reads the model's metadata (labels, feature names, tensor names,
version) from the model repository at start; the model itself runs only in
the predictor, which must serve that same version (:meth:`RemoteModel.check_ready`).
"""

import numpy as np
from pydantic import Field

from shared.metrics import stage
from shared.model import ModelMetadata, load_metadata
from shared.settings import ModelSettings
from shared.v2.client import V2Client


class RemoteModelSettings(ModelSettings):
    """Which model to ask for, where the predictor that runs it is, how long a call may take."""

    predictor_url: str = Field(description="host:port of the predictor's gRPC endpoint.")
    predictor_timeout_s: float = Field(1.0, gt=0, description="Deadline of one predictor call.")


class RemoteModel:
    """One model on one predictor: its metadata and, once connected, the client to call it."""

    def __init__(self, metadata: ModelMetadata, url: str, timeout_s: float) -> None:
        self.metadata = metadata
        self.url = url
        self.timeout_s = timeout_s
        self.client: V2Client | None = None

    @classmethod
    def from_settings(cls, settings: RemoteModelSettings) -> "RemoteModel":
        """``MODEL_NAME`` (at ``MODEL_VERSION``, else the highest) on ``PREDICTOR_URL``."""
        metadata = load_metadata(settings.model_dir, settings.model_name, settings.model_version)
        return cls(metadata, settings.predictor_url, settings.predictor_timeout_s)

    def connect(self) -> None:
        """Open the channel to the predictor (one for the life of the process)."""
        self.client = V2Client(self.url, self.timeout_s)

    async def close(self) -> None:
        """Close the channel (waits for calls in flight)."""
        if self.client is not None:
            await self.client.close()

    async def check_ready(self) -> str | None:
        """Readiness: the predictor answers and serves the model at our version."""
        if self.client is None:
            return "predictor client not started"
        if not await self.client.ready(self.metadata.name, self.metadata.version):
            wanted = f"{self.metadata.name} v{self.metadata.version}"
            return f"predictor at {self.url} is unreachable or does not serve {wanted}"
        return None

    async def predict_proba(self, rows: np.ndarray) -> np.ndarray:
        """Class probabilities for float32 ``rows``, timed as the ``predictor_call`` stage."""
        assert self.client is not None, "connect() before calling"
        with stage("predictor_call"):
            outputs = await self.client.infer(
                self.metadata.name,
                {self.metadata.input.name: rows},
                ["probabilities"],
                self.metadata.version,
            )
        return outputs["probabilities"]
