"""Call a V2 predictor over its REST face (HTTP/1.1, JSON tensors) from an async service.

The same calls, deadlines, request id and errors as :class:`shared.v2.client.V2Client`
(503 down, 504 too slow, 422 refused input, 413 too large, each naming the
peer), over the protocol's ``/v2`` routes instead of gRPC. An api picks it by
giving its peer an ``http://`` URL (:func:`shared.v2.peers.v2_client`): the
trade is measured in ``make bench`` (``hop at rest``). One aiohttp session per
peer keeps its connections alive between calls.
"""

import logging
import time
from typing import Any

import aiohttp
import numpy as np
import orjson

from shared.errors import (
    DependencyTimeout,
    DependencyUnavailable,
    InvalidInput,
    PayloadTooLarge,
    ServiceError,
)
from shared.logs import request_id_var
from shared.v2.client import OUTBOUND_LATENCY
from shared.v2.tensors import TensorError, datatype_of, from_json

log = logging.getLogger("shared.v2.rest_client")


class V2RestClient:
    """An Open Inference Protocol REST client for one predictor (``http://host:port``)."""

    def __init__(self, base_url: str, timeout_s: float, peer: str = "predictor") -> None:
        self.target = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.peer = peer
        self._session: aiohttp.ClientSession | None = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use, inside the running event loop
            # No DNS cache: a restarted predictor (new address) is found at once, and a
            # stopped one (no address) fails the call at once, as gRPC's channel does.
            connector = aiohttp.TCPConnector(keepalive_timeout=30, use_dns_cache=False)
            self._session = aiohttp.ClientSession(self.target, connector=connector)
        return self._session

    async def close(self) -> None:
        """Close the connections."""
        if self._session is not None:
            await self._session.close()

    def _headers(self) -> dict[str, str]:
        request_id = request_id_var.get()
        return {"x-request-id": request_id} if request_id else {}

    @staticmethod
    def _path(model: str, version: str, suffix: str) -> str:
        return f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + suffix

    async def ready(self, model: str | None = None, version: str = "") -> bool:
        """Server (or model) readiness; False when the predictor is down or says not ready."""
        path = "/v2/health/ready" if model is None else self._path(model, version, "/ready")
        try:
            async with self._http().get(
                path, timeout=aiohttp.ClientTimeout(total=self.timeout_s)
            ) as answer:
                return answer.status == 200 and bool((await answer.json()).get("ready"))
        except (aiohttp.ClientError, TimeoutError, ValueError):
            return False

    async def infer(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        outputs: list[str],
        version: str = "",
        timeout_s: float | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs``; returns the requested ``outputs`` as numpy arrays."""
        deadline = self.timeout_s if timeout_s is None else timeout_s
        body = orjson.dumps(
            {
                "inputs": [
                    {"name": n, "shape": a.shape, "datatype": datatype_of(a), "data": a.ravel()}
                    for n, a in inputs.items()
                ],
                "outputs": [{"name": name} for name in outputs],
            },
            option=orjson.OPT_SERIALIZE_NUMPY,
        )
        started = time.perf_counter()
        outcome = "ok"
        try:
            async with self._http().post(
                self._path(model, version, "/infer"),
                data=body,
                headers={"content-type": "application/json", **self._headers()},
                # A LAN connect takes well under a millisecond: one not made within half
                # the deadline is a peer that is down (503), not one that is slow (504).
                timeout=aiohttp.ClientTimeout(total=deadline, sock_connect=deadline / 2),
            ) as answer:
                payload = await answer.read()
                if answer.status != 200:
                    outcome = f"http_{answer.status}"
                    raise self._refusal(answer.status, payload)
        except TimeoutError as exc:
            if isinstance(exc, aiohttp.ConnectionTimeoutError):  # not even connected: down
                outcome = "unavailable"
                raise self._unavailable(exc) from None
            outcome = "deadline_exceeded"
            raise DependencyTimeout.waited(self.peer, deadline) from None
        except aiohttp.ClientError as exc:
            outcome = "unavailable"
            raise self._unavailable(exc) from None
        finally:
            OUTBOUND_LATENCY.labels(self.peer, outcome).observe(time.perf_counter() - started)
        return self._outputs(payload)

    def _unavailable(self, exc: Exception) -> DependencyUnavailable:
        log.warning("%s at %s is unavailable: %s", self.peer, self.target, exc)
        return DependencyUnavailable.peer_down(self.peer)

    def _refusal(self, status: int, payload: bytes) -> ServiceError:
        message = _error_message(payload)
        if status == 400:
            return InvalidInput(f"{self.peer} refused the input: {message}")
        if status == 413:
            return PayloadTooLarge(f"{self.peer} refused the input as too large: {message}")
        log.error("%s answered HTTP %s: %s", self.peer, status, message)
        return DependencyUnavailable(f"{self.peer} failed: HTTP {status}")

    def _outputs(self, payload: bytes) -> dict[str, np.ndarray]:
        try:
            tensors = orjson.loads(payload)["outputs"]
            return dict(from_json(tensor, i) for i, tensor in enumerate(tensors))
        except (orjson.JSONDecodeError, KeyError, TypeError, TensorError) as exc:
            log.error("%s answered a malformed body: %s", self.peer, exc)
            raise DependencyUnavailable(f"{self.peer} failed: a malformed answer") from None


def _error_message(payload: bytes) -> str:
    try:
        body: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:200].decode(errors="replace")
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)
