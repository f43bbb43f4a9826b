"""A fan-out's results kept in Redis as they arrive, for a caller who comes back later.

    store = FanOutStore(connect_async(RedisSettings()), prefix="mlsp:parallel")
    job_id = await store.create(["a", "b", "c"], deadline_s=5.0)
    await fan_out(calls, 5.0, on_result=lambda r: store.record(job_id, r))   # in the background
    await store.finish(job_id)
    ...
    job = await store.read(job_id)     # from any replica: job.results_now(), job.pending, ...

One Redis hash per job (``<prefix>:job:<id>``): the job's members, deadline
and context, then one field per member's result as it arrives, then a
``finished`` mark; every write refreshes the hash's TTL. A job whose process
died before finishing is not left "running" for ever: once its deadline (plus
a grace second) has passed, :meth:`JobRecord.results_now` reports the members
still missing as timed out.
"""

import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from fanout import MemberResult
from redis import asyncio as aioredis
from redis.exceptions import RedisError

from shared.kit.errors import DependencyTimeout, DependencyUnavailable, ServiceError
from shared.stores.redis_client import redis_errors

#: After its deadline plus this, a job's missing members count as timed out.
GRACE_S = 1.0
_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
_META, _FINISHED, _RESULT = "meta", "finished", "result:"
_ERRORS: dict[str, type[ServiceError]] = {
    DependencyTimeout.code: DependencyTimeout,
    DependencyUnavailable.code: DependencyUnavailable,
}


def _error(code: str, message: str) -> ServiceError:
    kind = _ERRORS.get(code)
    if kind is not None:
        return kind(message)
    error = ServiceError(message)
    error.code = code
    return error


@dataclass(frozen=True)
class JobRecord:
    """What Redis holds about one job."""

    job_id: str
    members: list[str]
    created_at: float
    deadline_s: float
    context: dict[str, Any]
    results: dict[str, MemberResult[Any]] = field(default_factory=dict)
    finished: bool = False
    finished_at: float | None = None

    @property
    def ended_at(self) -> float:
        """When the job ended: marked finished, or else its deadline (seconds since the epoch)."""
        return self.finished_at or self.created_at + self.deadline_s

    @property
    def pending(self) -> list[str]:
        """Members without a result yet."""
        return [m for m in self.members if m not in self.results]

    def overdue(self, now: float | None = None) -> bool:
        """The deadline (plus :data:`GRACE_S`) has passed."""
        now = time.time() if now is None else now
        return now > self.created_at + self.deadline_s + GRACE_S

    def final(self, now: float | None = None) -> bool:
        """No more results will come: finished, nobody pending, or overdue."""
        return self.finished or not self.pending or self.overdue(now)

    def results_now(self, now: float | None = None) -> list[MemberResult[Any]]:
        """The results so far, in member order; missing ones as timeouts once overdue."""
        overdue = self.overdue(now)
        results = []
        for member in self.members:
            if member in self.results:
                results.append(self.results[member])
            elif overdue or self.finished:
                late = DependencyTimeout(
                    f"{member} had no result by the job's deadline of {self.deadline_s} s"
                )
                results.append(MemberResult(member, self.deadline_s * 1000, error=late))
        return results


class FanOutStore:
    """Jobs and their members' results in Redis, with a TTL."""

    def __init__(
        self, redis: aioredis.Redis, *, prefix: str, ttl_s: int = 3600, retry_after_s: int = 2
    ) -> None:
        self.redis = redis
        self.prefix = prefix
        self.ttl_s = ttl_s
        self.retry_after_s = retry_after_s

    def _key(self, job_id: str) -> str:
        return f"{self.prefix}:job:{job_id}"

    async def _write(self, action: str, job_id: str, fields: dict[str, bytes]) -> None:
        key = self._key(job_id)
        with redis_errors(action, self.retry_after_s):
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.hset(key, mapping=fields)
                pipe.expire(key, self.ttl_s)
                await pipe.execute()

    async def create(
        self, members: Sequence[str], deadline_s: float, context: dict[str, Any] | None = None
    ) -> str:
        """Store a new job for ``members``; returns its id."""
        job_id = uuid.uuid4().hex
        meta = {
            "members": list(members),
            "created_at": time.time(),
            "deadline_s": deadline_s,
            "context": context or {},
        }
        await self._write("storing the job", job_id, {_META: orjson.dumps(meta)})
        return job_id

    async def record(self, job_id: str, result: MemberResult[Any]) -> None:
        """Store one member's result (its value must serialise with orjson; numpy is fine)."""
        body: dict[str, Any] = {"ms": result.ms}
        if result.error is None:
            body["value"] = result.value
        else:
            body["code"], body["message"] = result.error.code, result.error.message
        data = orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY)
        await self._write("storing a result", job_id, {_RESULT + result.member: data})

    async def finish(self, job_id: str) -> None:
        """Mark the job finished (every member has its result), with the time it did."""
        await self._write("finishing the job", job_id, {_FINISHED: repr(time.time()).encode()})

    async def read(self, job_id: str) -> JobRecord | None:
        """The job, or None when unknown or expired."""
        if not _JOB_ID.match(job_id):
            return None
        with redis_errors("reading the job", self.retry_after_s):
            fields = await self.redis.hgetall(self._key(job_id))
        raw = {k.decode(): v for k, v in fields.items()}
        if _META not in raw:
            return None
        meta = orjson.loads(raw[_META])
        results = {}
        for name, data in raw.items():
            if name.startswith(_RESULT):
                member, body = name.removeprefix(_RESULT), orjson.loads(data)
                error = _error(body["code"], body["message"]) if "code" in body else None
                results[member] = MemberResult(member, body["ms"], body.get("value"), error)
        return JobRecord(
            job_id=job_id,
            members=meta["members"],
            created_at=meta["created_at"],
            deadline_s=meta["deadline_s"],
            context=meta["context"],
            results=results,
            finished=_FINISHED in raw,
            finished_at=float(raw[_FINISHED]) if _FINISHED in raw else None,
        )

    async def ping(self) -> str | None:
        """Readiness: None when Redis answers, else why not."""
        try:
            await self.redis.ping()
        except RedisError as exc:
            return f"Redis: {type(exc).__name__}: {exc}"
        return None
