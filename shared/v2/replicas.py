"""Calls spread over a peer's replicas, and retried once on another when one is down.

A peer's URL names a host (``predictor:8081``); DNS answers with one address per
replica (``docker compose up --scale predictor=3``, a headless Service in
Kubernetes). Both clients spread their calls over those addresses in turn and
retry a call that failed as *unavailable* (refused, reset, replica stopping)
once more on another replica, within the call's own deadline; never a call the
peer answered, nor one that ran out of time. A retry budget keeps retries from
multiplying an outage: retries stop when more than about ``ratio`` of the calls
fail, and come back as calls succeed.

* gRPC (:class:`shared.v2.client.V2Client`): gRPC does it all from the channel's
  service config (:func:`grpc_service_config`): the ``round_robin`` policy over the
  DNS resolver, client-side health checks (a replica whose health service says
  NOT_SERVING, e.g. one draining before it stops, leaves the rotation at once), a
  ``retryPolicy`` on UNAVAILABLE and ``retryThrottling`` as the budget. New replicas
  are found when the channel re-resolves: on any connection's end, at most every
  ``PEER_RESOLVE_INTERVAL_S``; the predictor ends each connection after
  ``GRPC_MAX_CONNECTION_AGE_S`` (graceful GOAWAY) so that this happens every few seconds.
* REST (:class:`shared.v2.rest_client.V2RestClient`): :class:`Addresses` (every
  address of the host, in turn, re-resolved every ``PEER_RESOLVE_INTERVAL_S`` and
  after a failed connection) and :class:`RetryBudget` (gRPC's ``retryThrottling``,
  the same rule).

``mlsp_outbound_retries_total{peer}`` counts the retries.
"""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

from prometheus_client import Counter
from pydantic import Field

from shared.kit.settings import _EnvSettings

OUTBOUND_RETRIES = Counter(
    "mlsp_outbound_retries",
    "Calls to a peer retried on another replica after failing as unavailable.",
    ["peer"],
)
#: The service whose methods the retry policy covers (the predictor's and prep's).
INFERENCE_SERVICE = "inference.GRPCInferenceService"
#: Trailing metadata in which a predictor says how many attempts came before the call it
#: answered (it saw gRPC's ``grpc-previous-rpc-attempts``): gRPC retries without telling
#: the caller, so this is how the caller counts its retries.
PREVIOUS_ATTEMPTS_KEY = "x-previous-rpc-attempts"
#: How long before the one retry (gRPC waits a random time up to this; so does REST).
RETRY_BACKOFF_S = 0.01


class ReplicaSettings(_EnvSettings):
    """How an api's calls to a peer spread over its replicas and are retried."""

    peer_retries: int = Field(
        1,
        ge=0,
        le=4,
        description="Times a call that failed as unavailable (refused, reset, replica "
        "stopping) is tried again on another replica, within its deadline; 0: never.",
    )
    peer_retry_budget_ratio: float = Field(
        0.1,
        gt=0,
        le=1,
        description="Retries earned by each successful call: retries stop while more than "
        "about this share of calls fail (gRPC's retryThrottling tokenRatio).",
    )
    peer_retry_budget_tokens: int = Field(
        10,
        ge=2,
        le=1000,
        description="Size of the retry budget: about half as many failures in a row are "
        "retried before the ratio applies (gRPC's retryThrottling maxTokens).",
    )
    peer_resolve_interval_s: float = Field(
        2.0,
        gt=0,
        description="How often the peer's host is looked up again, to find replicas that "
        "came or went (gRPC: the shortest time between two lookups).",
    )


def grpc_service_config(settings: ReplicaSettings) -> dict[str, Any]:
    """The gRPC service config of a channel to a peer: round robin over healthy
    replicas, one retry on UNAVAILABLE under a budget (none when ``PEER_RETRIES=0``)."""
    config: dict[str, Any] = {
        "loadBalancingConfig": [{"round_robin": {}}],
        "healthCheckConfig": {"serviceName": ""},
    }
    if settings.peer_retries:
        config["methodConfig"] = [
            {
                "name": [{"service": INFERENCE_SERVICE}],
                "retryPolicy": {
                    "maxAttempts": settings.peer_retries + 1,
                    "initialBackoff": f"{RETRY_BACKOFF_S}s",
                    "maxBackoff": f"{RETRY_BACKOFF_S * 10}s",
                    "backoffMultiplier": 2,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
        config["retryThrottling"] = {
            "maxTokens": settings.peer_retry_budget_tokens,
            "tokenRatio": round(settings.peer_retry_budget_ratio, 3),
        }
    return config


class RetryBudget:
    """gRPC's retry throttling (gRFC A6), for clients that retry by hand.

    The budget starts full at ``max_tokens``; each failed call takes a token, each
    successful one gives back ``ratio``; retries are allowed while more than half
    the tokens are left.
    """

    def __init__(self, max_tokens: int, ratio: float) -> None:
        self.max_tokens = float(max_tokens)
        self.ratio = ratio
        self.tokens = self.max_tokens

    @classmethod
    def from_settings(cls, settings: ReplicaSettings) -> RetryBudget:
        """The budget ``settings`` describe."""
        return cls(settings.peer_retry_budget_tokens, settings.peer_retry_budget_ratio)

    def succeeded(self) -> None:
        """A call got an answer."""
        self.tokens = min(self.max_tokens, self.tokens + self.ratio)

    def failed(self) -> None:
        """A call failed as unavailable."""
        self.tokens = max(0.0, self.tokens - 1)

    def allows_retry(self) -> bool:
        """True while retries are within the budget."""
        return self.tokens > self.max_tokens / 2


class Addresses:
    """Every address of ``host``, one after the other: the replicas of a REST peer.

    Looked up on first use, again every ``refresh_s`` (in the background: a call never
    waits for it while addresses are known) and soon after a failed connection, whose
    address is skipped for ``refresh_s`` (unless no other is left), as gRPC's round
    robin skips a replica it cannot reach.
    """

    def __init__(self, host: str, port: int, refresh_s: float) -> None:
        self.host = host
        self.port = port
        self.refresh_s = refresh_s
        self.addresses: list[str] = []
        self._skipped_until: dict[str, float] = {}
        self._turn = 0
        self._resolved_at = float("-inf")
        self._refresh: asyncio.Task[None] | None = None

    async def next(self) -> str:
        """The address of the next replica; :class:`OSError` when the host has none."""
        if not self.addresses:
            await self.resolve()
        elif time.monotonic() - self._resolved_at > self.refresh_s and self._refresh is None:
            self._refresh = asyncio.get_running_loop().create_task(self._refresh_quietly())
        now = time.monotonic()
        reachable = [a for a in self.addresses if self._skipped_until.get(a, 0) <= now]
        turn = reachable or self.addresses
        self._turn += 1
        return turn[self._turn % len(turn)]

    def failed(self, address: str) -> None:
        """A connection to ``address`` failed: skip it for a while, and look the host up soon."""
        self._skipped_until[address] = time.monotonic() + self.refresh_s
        self._resolved_at = float("-inf")

    async def resolve(self) -> None:
        """Look the host up now; :class:`OSError` (``socket.gaierror``) when it has no address."""
        infos = await asyncio.get_running_loop().getaddrinfo(
            self.host, self.port, type=socket.SOCK_STREAM
        )
        self.addresses = sorted({str(info[4][0]) for info in infos})
        self._resolved_at = time.monotonic()

    async def close(self) -> None:
        """Stop a lookup under way."""
        if self._refresh is not None:
            self._refresh.cancel()

    async def _refresh_quietly(self) -> None:
        try:
            await self.resolve()
        except socket.gaierror as exc:
            if exc.errno == socket.EAI_NONAME:  # no replica left: the next call fails at once
                self.addresses = []
            self._resolved_at = time.monotonic()  # else a blip: keep the known addresses
        except OSError:
            self._resolved_at = time.monotonic()
        finally:
            self._refresh = None
