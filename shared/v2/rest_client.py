"""Call a V2 predictor over its REST face (HTTP/1.1, JSON tensors) from an async service.

The same calls, deadlines, request id and errors as :class:`shared.v2.client.V2Client`
(503 down, 504 too slow, 422 refused input, 413 too large, each naming the
peer), over the protocol's ``/v2`` routes instead of gRPC. An api picks it by
giving its peer an ``http://`` URL (:func:`shared.v2.peers.v2_client`): the
trade is measured in ``make bench`` (``hop at rest``). One aiohttp session per
peer keeps its connections alive between calls, to each replica: calls go to
every address of the peer's host in turn, and one that fails as unavailable
(refused, reset) is retried once on the next, within its deadline and a retry
budget (:mod:`shared.v2.replicas`).
"""

import asyncio
import logging
import random
import time
from typing import Any

import aiohttp
import numpy as np
import orjson
from yarl import URL

from shared.kit.errors import (
    DependencyTimeout,
    DependencyUnavailable,
    InvalidInput,
    PayloadTooLarge,
    ServiceError,
)
from shared.kit.logs import request_id_var
from shared.v2.client import OUTBOUND_LATENCY
from shared.v2.replicas import (
    OUTBOUND_RETRIES,
    RETRY_BACKOFF_S,
    Addresses,
    ReplicaSettings,
    RetryBudget,
)
from shared.v2.tensors import TensorError, datatype_of, from_json

log = logging.getLogger("shared.v2.rest_client")


class _Unavailable(Exception):
    """A call that got no answer from the replica it went to (refused, reset, no address)."""


class V2RestClient:
    """An Open Inference Protocol REST client for one predictor (``http://host:port``, any
    number of replicas behind the name); ``replicas``: how calls spread and retry (the
    defaults of :class:`ReplicaSettings` when None)."""

    def __init__(
        self,
        base_url: str,
        timeout_s: float,
        peer: str = "predictor",
        replicas: ReplicaSettings | None = None,
    ) -> None:
        self.target = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.peer = peer
        replicas = replicas or ReplicaSettings()
        self.retries = replicas.peer_retries
        self.budget = RetryBudget.from_settings(replicas)
        url = URL(self.target)
        if url.host is None or url.port is None:
            raise ValueError(f"peer URL {base_url!r} names no host")
        self._url = url
        self.addresses = Addresses(url.host, url.port, replicas.peer_resolve_interval_s)
        self._session: aiohttp.ClientSession | None = None
        self._retried = OUTBOUND_RETRIES.labels(peer)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:  # made on first use, inside the running event loop
            # Calls go to addresses, not the host name: its lookups are the rotation's.
            connector = aiohttp.TCPConnector(keepalive_timeout=30, use_dns_cache=False)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    async def close(self) -> None:
        """Close the connections."""
        await self.addresses.close()
        if self._session is not None:
            await self._session.close()

    def _headers(self, body: bytes | None) -> dict[str, str]:
        headers = {"host": self._url.raw_authority}
        if body is not None:
            headers["content-type"] = "application/json"
        request_id = request_id_var.get()
        if request_id:
            headers["x-request-id"] = request_id
        return headers

    @staticmethod
    def _path(model: str, version: str, suffix: str) -> str:
        return f"/v2/models/{model}" + (f"/versions/{version}" if version else "") + suffix

    async def _send(
        self, method: str, path: str, deadline_s: float, body: bytes | None = None
    ) -> tuple[int, bytes]:
        """One call: the answer's status and body. A call that got no answer is retried on
        the next replica while the deadline, ``PEER_RETRIES`` and the budget allow.

        Raises :class:`_Unavailable` (no replica answered), :class:`TimeoutError` (the
        deadline passed)."""
        ends = time.monotonic() + deadline_s
        attempt = 0
        while True:
            try:
                status, payload = await self._attempt(method, path, ends, body)
            except _Unavailable:
                self.budget.failed()
                left_s = ends - time.monotonic()
                if attempt >= self.retries or left_s <= 0 or not self.budget.allows_retry():
                    raise
                attempt += 1
                self._retried.inc()
                await asyncio.sleep(min(random.uniform(0, RETRY_BACKOFF_S), left_s))
                continue
            self.budget.succeeded()
            return status, payload

    async def _attempt(
        self, method: str, path: str, ends: float, body: bytes | None
    ) -> tuple[int, bytes]:
        try:
            address = await self.addresses.next()
        except OSError as exc:  # the host has no address: no replica is up
            raise _Unavailable(f"{self._url.host}: {exc}") from None
        left_s = max(ends - time.monotonic(), 0.001)
        url = self._url.with_host(address).with_path(path)
        try:
            async with self._http().request(
                method,
                url,
                data=body,
                headers=self._headers(body),
                # A LAN connect takes well under a millisecond: one not made within half
                # the deadline is a peer that is down (503), not one that is slow (504).
                timeout=aiohttp.ClientTimeout(total=left_s, sock_connect=left_s / 2),
                server_hostname=self._url.host if self._url.scheme == "https" else None,
            ) as answer:
                return answer.status, await answer.read()
        except aiohttp.ClientConnectionError as exc:
            # Refused, reset, closed before answering, or not connected within half the
            # deadline: no answer, so another replica may give one. A read that timed out
            # is the deadline (a replica that is slow, not down).
            if isinstance(exc, TimeoutError) and not isinstance(
                exc, aiohttp.ConnectionTimeoutError
            ):
                raise
            self.addresses.failed(address)
            raise _Unavailable(str(exc) or type(exc).__name__) from None

    async def ready(self, model: str | None = None, version: str = "") -> bool:
        """Server (or model) readiness; False when the predictor is down or says not ready."""
        path = "/v2/health/ready" if model is None else self._path(model, version, "/ready")
        try:
            status, payload = await self._send("GET", path, self.timeout_s)
            return status == 200 and bool(orjson.loads(payload).get("ready"))
        except (_Unavailable, aiohttp.ClientError, TimeoutError, ValueError):
            return False

    async def infer(
        self,
        model: str,
        inputs: dict[str, np.ndarray],
        outputs: list[str],
        version: str = "",
        timeout_s: float | None = None,
        *,
        answered: dict[str, str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Run ``model`` on ``inputs``; returns the requested ``outputs`` as numpy arrays
        (and puts the ``model_version`` that answered in ``answered`` when it is a dict)."""
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
            status, payload = await self._send(
                "POST",
                self._path(model, version, "/infer"),
                deadline,
                body,
            )
            if status != 200:
                outcome = f"http_{status}"
                raise self._refusal(status, payload)
        except TimeoutError:
            outcome = "deadline_exceeded"
            raise DependencyTimeout.waited(self.peer, deadline) from None
        except (_Unavailable, aiohttp.ClientError) as exc:
            outcome = "unavailable"
            raise self._unavailable(exc) from None
        finally:
            OUTBOUND_LATENCY.labels(self.peer, outcome).observe(time.perf_counter() - started)
        return self._outputs(payload, answered)

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

    def _outputs(self, payload: bytes, answered: dict[str, str] | None) -> dict[str, np.ndarray]:
        try:
            body = orjson.loads(payload)
            outputs = dict(from_json(tensor, i) for i, tensor in enumerate(body["outputs"]))
            if answered is not None:
                answered["model_version"] = str(body.get("model_version", ""))
            return outputs
        except (orjson.JSONDecodeError, KeyError, TypeError, TensorError) as exc:
            log.error("%s answered a malformed body: %s", self.peer, exc)
            raise DependencyUnavailable(f"{self.peer} failed: a malformed answer") from None


def _error_message(payload: bytes) -> str:
    try:
        body: Any = orjson.loads(payload)
    except orjson.JSONDecodeError:
        return payload[:200].decode(errors="replace")
    return str(body.get("error", body)) if isinstance(body, dict) else str(body)
