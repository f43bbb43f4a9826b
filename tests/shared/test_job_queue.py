"""JobQueue: RQ's own jobs, sent one MULTI/EXEC per loop turn, read in one round trip."""

import asyncio
from collections.abc import Callable

import pytest
import redis
from redis import asyncio as aioredis
from rq import Queue, Retry, SimpleWorker
from rq.job import Job

from shared.jobs.async_queue import JobQueue
from shared.jobs.contract import QueueFull, job_view_with
from shared.kit.errors import NotFound


def execs(client: redis.Redis) -> int:
    """How many EXEC commands Redis has run since it started."""
    return int(client.info("commandstats").get("cmdstat_exec", {}).get("calls", 0))


async def submit(redis_url: str, count: int, **queue_options: int) -> list[Job | BaseException]:
    """``count`` submits made in one event-loop turn."""
    client = aioredis.Redis.from_url(redis_url)
    jobs = JobQueue(client, "test", **queue_options)
    try:
        return await asyncio.gather(
            *(jobs.enqueue_call("tests.shared.jobfuncs.add", args=(i, 1)) for i in range(count)),
            return_exceptions=True,
        )
    finally:
        await client.aclose()


def test_a_turns_submits_share_one_exec_and_are_rqs_own_jobs(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    before = execs(client)
    jobs = asyncio.run(submit(redis_url, 5))
    assert execs(client) == before + 1
    queue = Queue("test", connection=client)
    assert queue.job_ids == [job.id for job in jobs]
    assert client.sismember("rq:queues", queue.key)
    # The same fields as a job RQ enqueues itself with the same options.
    own = queue.enqueue_call("tests.shared.jobfuncs.add", args=(0, 1))
    assert set(client.hkeys(jobs[0].key)) == set(client.hkeys(own.key))
    assert client.ttl(jobs[0].key) == client.ttl(own.key)


def test_the_stock_worker_runs_them_and_the_result_is_read_back(redis_url: str) -> None:
    (job,) = asyncio.run(submit(redis_url, 1))
    client = redis.Redis.from_url(redis_url)
    SimpleWorker(["test"], connection=client).work(burst=True)

    async def read() -> dict[str, object]:
        async_client = aioredis.Redis.from_url(redis_url)
        fetched, latest = await JobQueue(async_client, "test").fetch(job.id)
        await async_client.aclose()
        return job_view_with(fetched, latest)

    view = asyncio.run(read())
    assert (view["status"], view["result"]) == ("finished", 1)


def test_options_travel_with_the_job(redis_url: str) -> None:
    async def one() -> Job:
        client = aioredis.Redis.from_url(redis_url)
        job = await JobQueue(client, "test").enqueue_call(
            "tests.shared.jobfuncs.add",
            args=(1, 2),
            timeout=7,
            result_ttl=60,
            retry=Retry(max=2),
            meta={"request_id": "r-1"},
        )
        await client.aclose()
        return job

    job = asyncio.run(one())
    stored = Job.fetch(job.id, connection=redis.Redis.from_url(redis_url))
    assert (stored.timeout, stored.result_ttl, stored.retries_left) == (7, 60, 2)
    assert stored.meta == {"request_id": "r-1"}
    assert list(stored.args) == [1, 2]


def test_a_full_queue_takes_what_fits_and_refuses_the_rest(redis_url: str) -> None:
    answers = asyncio.run(submit(redis_url, 5, max_queued_jobs=3))
    accepted = [a for a in answers if isinstance(a, Job)]
    refused = [a for a in answers if isinstance(a, QueueFull)]
    assert (len(accepted), len(refused)) == (3, 2)
    assert Queue("test", connection=redis.Redis.from_url(redis_url)).count == 3


class CountedDepthReads(JobQueue):
    """A JobQueue that counts its round trips that only read the queue's depth."""

    reads = 0

    async def depth(self) -> int:
        self.reads += 1
        return await super().depth()


def turns(
    redis_url: str, sizes: list[int], between: Callable[[int], None], **queue_options: int
) -> tuple[list[list[Job | BaseException]], int]:
    """A turn of ``sizes[i]`` submits each, ``between(i)`` after each; the answers and the
    depth-only reads the queue made."""

    async def run() -> tuple[list[list[Job | BaseException]], int]:
        client = aioredis.Redis.from_url(redis_url)
        jobs = CountedDepthReads(client, "test", **queue_options)
        answers = []
        try:
            for i, size in enumerate(sizes):
                answers.append(
                    await asyncio.gather(
                        *(jobs.enqueue_call("tests.shared.jobfuncs.add", args=(n, 1))
                          for n in range(size)),
                        return_exceptions=True,
                    )
                )  # fmt: skip
                between(i)
        finally:
            await client.aclose()
        return answers, jobs.reads

    return asyncio.run(run())


def accepted_count(answers: list[Job | BaseException]) -> int:
    return sum(isinstance(a, Job) for a in answers)


def test_a_bounded_queue_with_room_costs_no_extra_round_trip(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    before = execs(client)
    answers, reads = turns(redis_url, [2, 2, 2], lambda _: None, max_queued_jobs=100)
    assert [accepted_count(a) for a in answers] == [2, 2, 2]
    assert execs(client) == before + 3
    assert reads == 1  # the first turn's: no depth was known yet; then the EXEC's own


def test_a_queue_drained_since_the_last_reading_is_asked_again_before_refusing(
    redis_url: str,
) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = Queue("test", connection=client)

    def drain_after_the_first(turn: int) -> None:
        if turn == 0:
            queue.empty()  # the workers took them

    answers, reads = turns(redis_url, [3, 2], drain_after_the_first, max_queued_jobs=3)
    # The last reading said full; Redis, asked again, says empty: nothing refused.
    assert [accepted_count(a) for a in answers] == [3, 2]
    assert reads == 2
    assert queue.count == 2


def test_another_process_can_take_the_queue_past_its_bound_by_one_turn(redis_url: str) -> None:
    client = redis.Redis.from_url(redis_url)
    queue = Queue("test", connection=client)

    def another_api_submits(turn: int) -> None:
        if turn == 0:
            for n in range(2):
                queue.enqueue_call("tests.shared.jobfuncs.add", args=(n, 1))

    answers, _ = turns(redis_url, [1, 1, 1], another_api_submits, max_queued_jobs=3)
    # Turn 2 trusted its reading (1 waiting): 4 waiting, one over; turn 3 read 4: refused.
    assert [accepted_count(a) for a in answers] == [1, 1, 0]
    assert isinstance(answers[2][0], QueueFull)
    assert queue.count == 4


def test_redis_down_fails_every_submit_of_the_turn() -> None:
    answers = asyncio.run(submit("redis://127.0.0.1:1/0", 3))
    assert all(isinstance(a, redis.ConnectionError) for a in answers)


@pytest.mark.parametrize("job_id", ["0" * 32, "a:b", ""])
def test_unknown_or_malformed_ids_are_not_found(redis_url: str, job_id: str) -> None:
    async def read() -> None:
        client = aioredis.Redis.from_url(redis_url)
        try:
            await JobQueue(client, "test").fetch(job_id)
        finally:
            await client.aclose()

    with pytest.raises(NotFound):
        asyncio.run(read())
