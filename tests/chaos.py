"""The fault suite: each internal container of a pattern stopped or killed under load.

For each pattern (a folder of ``patterns/`` with a compose file; prep-pred in both its
variants), the stack comes up once; a steady load of a few threads sends the pattern's
own request (``POST /predict``, or ``POST /rows`` for batch, with the example body of
the api's OpenAPI schema, its decimals jittered so caches miss, or a sample image for
an api that takes images) to the public api. Then, one at a time:

* **one replica** (the compose files' default): each internal service (a long-running
  one that publishes no port, read from ``docker compose config``: predictors,
  workers, Redis, PostgreSQL, ...) is stopped gracefully (``docker compose stop``),
  left down a few seconds and started again; the called tiers that can run replicas
  (:func:`compose.config.scalable_services`) are also killed (SIGKILL: a crash);
* **two replicas**, for the patterns that answer at once (not the queueing ones, whose
  guarantee is that nothing is lost or run twice, not that nothing waits): every
  scalable tier is scaled to 2 and, once both replicas get calls, one replica of each
  in turn is stopped gracefully (``docker stop``: it drains) and, separately, killed
  (``docker kill``), left down a few seconds and started again.

Recorded per fault:

* requests that failed from the fault until the api answered again;
* the calls the callers retried on another replica (``mlsp_outbound_retries_total`` of
  the api and of any other service that calls the faulted one);
* seconds from the restart until full recovery: requests succeed again, and for
  patterns that queue work (202 answers: async jobs, batch rows), the work accepted
  before the restart is done; with two replicas, also until the restarted replica
  serves calls again;
* for queued work, at the end: accepted jobs or rows lost (never finished) and
  duplicated (run twice: two ``job finished`` log lines, two prediction rows).

The verdict (:meth:`FaultResult.problems`): with two replicas a fault fails no request;
with one, failures are bounded by the seconds the service was down.

``python -m tests.chaos [PATTERN[:VARIANT] ...] [--replicas 1 2]`` (``make chaos``) runs
every fault of every pattern and writes ``loadtests/reports/chaos.md`` (and each run's
results to ``loadtests/results/chaos/``: a long suite run in parts becomes one report with
``--merge FILE ...``);
``tests/test_chaos_e2e.py`` runs a few faults under the e2e marker and asserts the verdict.
"""

import argparse
import dataclasses
import math
import os
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson

from compose.config import scalable_services
from loadtests.measured import load_average, write_report
from tests.api_fuzz import example_body
from tests.chaos_report import markdown
from tests.compose_config import compose_config, internal_services, patterns
from tests.compose_stack import REPO_ROOT, ComposeStack
from tests.replicas import (
    callers,
    docker,
    outbound_retries,
    scale,
    wait_in_rotation,
    wait_serving,
)

REPORT = REPO_ROOT / "loadtests" / "reports" / "chaos.md"
RESULTS = REPO_ROOT / "loadtests" / "results" / "chaos"  # each run's results, for --merge
THREADS = 4
PAUSE_S = 0.1  # between one thread's requests: a steady load the workers keep up with
DOWN_S = 3.0  # how long each container stays stopped
STEADY_S = 2.0  # recovered = this long without a failed request
RECOVERY_TIMEOUT_S = 90.0
ROTATION_TIMEOUT_S = 60.0  # for a replica to get calls (after a scale-up or a restart)
#: After every new replica got calls: long enough for every caller's channel to look the
#: replicas up again (a predictor ends connections after GRPC_MAX_CONNECTION_AGE_S, 5 s).
ROTATION_SETTLE_S = 8.0
WARM_UP_S = 2.0  # load before the first fault
#: With one replica, a request sent while its dependency is down can only fail (without
#: a queue): the failures are bounded by the seconds it was down (from the fault until
#: its healthcheck passes) at the load's request rate over those seconds, times this
#: margin (what fails in the moments after it is back, while the caller reconnects).
#: With two or more, the other replica answers: a fault must fail no request at all.
FAILURE_RATE_MARGIN = 1.5
#: Services no answer waits for: losing or slowing one must fail no request at all, even
#: with one replica (shadow's candidate only gets mirrored copies).
OFF_THE_ANSWER_PATH = {("shadow", "candidate")}
#: Services another one stands in for: losing or slowing one must fail no request either
#: (canary's canary: the primary answers its share).
STOOD_IN_FOR = {("canary", "canary")}
#: Services also slowed under load (recreated with these settings for DOWN_S, then as they
#: were): the predictor's DELAY_MS, well past the caller's deadline for them.
SLOWED = {
    ("shadow", "candidate"): {"CANDIDATE_DELAY_MS": "2000"},
    ("canary", "canary"): {"CANARY_DELAY_MS": "2000"},
}
#: What each way of faulting a service does to it, as the report says it.
VERBS = {"stop": "stopped", "kill": "killed", "slow": "slowed"}
#: Patterns whose compose file has variants (``VARIANT``): each is run in every one.
VARIANTS = {"prep-pred": ("simple", "microservice")}
FAULTS = ("stop", "kill")  # docker stop (SIGTERM: a graceful stop), docker kill (SIGKILL)
#: Settings of the stacks under test: fast heartbeats, a batch run every 2 s.
STACK_ENV = {
    "WORKER_HEARTBEAT_S": "0.5",
    "WORKER_MAINTENANCE_S": "1",
    "BATCH_INTERVAL_S": "2",
    "BATCH_RUN_STALE_S": "10",
    "ACCESS_LOG": "true",
}


@dataclass
class Sample:
    """One request of the load: when it was sent and answered, and whether it succeeded."""

    sent: float
    done: float
    ok: bool
    why: str = ""  # a failure: the status and the error's code ("503 dependency_unavailable")
    version: str = ""  # the answer's model_version (answered requests of a sync api)


@dataclass
class FaultResult:
    """What stopping (or killing) and restarting one service did to a pattern."""

    pattern: str  # with its variant, when it has several: "prep-pred (microservice)"
    service: str
    requests: int
    failed: int
    recovery_s: float | None  # None: not recovered within RECOVERY_TIMEOUT_S
    lost: int | None = None  # queued work only
    duplicated: int | None = None
    queued: bool = False  # the pattern queues work (202 answers): lost/duplicated apply
    down_s: float = 0.0  # from the fault until the service was healthy again
    request_rate: float = 0.0  # requests/s of the load while the service was down
    how: str = "stop"  # "stop" (SIGTERM, graceful), "kill" (SIGKILL, a crash) or "slow"
    replicas: int = 1  # replicas of the service when one of them was faulted
    retries: int | None = None  # calls retried on another replica (None: not counted)
    rejoined_s: float | None = None  # replicas >= 2: from the restart until it served again
    failures: dict[str, int] = field(default_factory=dict)  # why requests failed: how many

    @property
    def recovered(self) -> bool:
        """True when the pattern came back within the timeout."""
        return self.recovery_s is not None

    @property
    def must_fail_nothing(self) -> bool:
        """True when no request may fail: another replica was left, no answer waits for
        the service (OFF_THE_ANSWER_PATH), or another service answers in its place
        (STOOD_IN_FOR)."""
        where = (self.pattern, self.service)
        return self.replicas >= 2 or where in OFF_THE_ANSWER_PATH or where in STOOD_IN_FOR

    @property
    def failures_allowed(self) -> int:
        """The failed requests this fault may cost: none when :attr:`must_fail_nothing`,
        else what the seconds it was down allow (see FAILURE_RATE_MARGIN)."""
        if self.must_fail_nothing:
            return 0
        return math.ceil(self.down_s * self.request_rate * FAILURE_RATE_MARGIN)

    def problems(self) -> list[str]:
        """What this fault broke that it must not: empty when the pattern held up."""
        found = []
        where = f"{self.pattern}, {self.service} {VERBS[self.how]}"
        if self.replicas >= 2:
            where += f" (1 of {self.replicas} replicas)"
        if not self.recovered:
            found.append(f"{where}: not recovered within {RECOVERY_TIMEOUT_S:g} s")
        if self.queued:
            if self.lost != 0:
                found.append(f"{where}: {self.lost} accepted jobs or rows lost")
            if self.duplicated != 0:
                found.append(f"{where}: {self.duplicated} jobs or rows run twice")
        elif self.must_fail_nothing and self.failed:
            why_none = (
                "with another replica up"
                if self.replicas >= 2
                else "another service answers in its place"
                if (self.pattern, self.service) in STOOD_IN_FOR
                else "off the answer's path"
            )
            found.append(
                f"{where}: {self.failed} requests failed ({self.failures or 'why not kept'}); "
                f"{why_none}, none may"
            )
        elif self.failed > self.failures_allowed:
            found.append(
                f"{where}: {self.failed} requests failed, more than the "
                f"{self.failures_allowed} allowed ({self.down_s:.1f} s down at "
                f"{self.request_rate:.1f} req/s x {FAILURE_RATE_MARGIN:g})"
            )
        return found


@dataclass
class Load:
    """A steady load on a pattern's api from a few threads; every request recorded."""

    stack: ComposeStack
    samples: list[Sample] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)  # job or row ids, in order
    kind: str = "sync"  # "sync" (200 answers), "jobs" (202 + job id) or "rows" (202 + row ids)
    path: str = "/predict"
    example: Any = None
    content_type: str = "application/json"
    image: bytes = b""
    pause_s: float = PAUSE_S  # between one thread's requests (0: back to back)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _threads: list[threading.Thread] = field(default_factory=list)

    def __post_init__(self) -> None:
        spec = self.stack.get("/openapi.json").json()
        posts = [path for path, ops in spec["paths"].items() if "post" in ops]
        self.path = next(p for p in ("/predict", "/rows", *posts) if p in posts)
        operation = spec["paths"][self.path]["post"]
        if "application/json" in operation["requestBody"]["content"]:
            self.example = example_body(operation)
        else:  # an api that takes an image (prep-pred): the first PNG its pattern ships
            samples = REPO_ROOT / "patterns" / self.stack.pattern / "samples"
            self.content_type, self.image = "image/png", min(samples.glob("*.png")).read_bytes()
        answer = self.stack.post(
            self.path,
            content=self.body(random.Random(0)),
            headers={"content-type": self.content_type},
        )
        assert answer.status_code in (200, 202), answer.text
        body = answer.json()
        queued = answer.status_code == 202
        self.kind = "jobs" if "job_id" in body else "rows" if queued and "ids" in body else "sync"

    def body(self, rng: random.Random) -> bytes:
        """The example body, its decimal numbers jittered (so a prediction cache misses)."""
        if self.image:
            return self.image
        return orjson.dumps(_jittered(self.example, rng))

    def start(self) -> "Load":
        """Start the threads."""
        for i in range(THREADS):
            thread = threading.Thread(target=self._run, args=(i,), daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop the threads (their last request finishes)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(15)

    def __enter__(self) -> "Load":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _run(self, seed: int) -> None:
        rng = random.Random(seed)
        headers = {"content-type": self.content_type}
        with httpx.Client(base_url=self.stack.base_url, timeout=5.0) as client:
            while not self._stop.is_set():
                sent = time.monotonic()
                ok = False
                why = ""
                ids: list[str] = []
                version = ""
                try:
                    answer = client.post(self.path, content=self.body(rng), headers=headers)
                    ok = answer.status_code in (200, 202)
                    if ok and self.kind == "sync":
                        version = str(answer.json().get("model_version", ""))
                    elif ok and self.kind == "jobs":
                        ids = [answer.json()["job_id"]]
                    elif ok and self.kind == "rows":
                        ids = [str(i) for i in answer.json()["ids"]]
                    elif not ok:
                        why = f"{answer.status_code} {_error_code(answer)}"
                except httpx.HTTPError as exc:
                    why = type(exc).__name__
                with self._lock:
                    self.samples.append(Sample(sent, time.monotonic(), ok, why, version))
                    self.accepted.extend(ids)
                time.sleep(self.pause_s)

    def rate(self, start: float, end: float) -> float:
        """Requests per second sent in ``[start, end)``."""
        return len(self.between(start, end)) / (end - start)

    def between(self, start: float, end: float) -> list[Sample]:
        """The requests sent in ``[start, end)``."""
        with self._lock:
            return [s for s in self.samples if start <= s.sent < end]

    def recovered_since(self, restarted: float) -> float | None:
        """Seconds from ``restarted`` until requests succeeded for good, once they have.

        None until there have been STEADY_S seconds of successes only.
        """
        now = time.monotonic()
        with self._lock:
            recent = [s for s in self.samples if s.sent >= restarted]
        failures = [s.done for s in recent if not s.ok]
        last_failure = max(failures, default=restarted)
        if now - last_failure < STEADY_S or not any(s.ok and s.sent > last_failure for s in recent):
            return None
        return max(0.0, last_failure - restarted)

    def last_accepted(self) -> str | None:
        """The id of the latest job or row accepted so far."""
        with self._lock:
            return self.accepted[-1] if self.accepted else None


def _error_code(answer: httpx.Response) -> str:
    """The contract's error code of a failed answer (its message when it has none)."""
    try:
        error = answer.json().get("error", {})
        return str(error.get("code") or error.get("message", ""))[:80]
    except (ValueError, AttributeError):
        return answer.text[:80]


def _jittered(value: Any, rng: random.Random) -> Any:
    if isinstance(value, float):
        return round(value * rng.uniform(0.9, 1.1), 3)
    if isinstance(value, list):
        return [_jittered(v, rng) for v in value]
    if isinstance(value, dict):
        return {k: _jittered(v, rng) for k, v in value.items()}
    return value


def status(stack: ComposeStack, load: Load, item: str) -> str:
    """The public status of job or row ``item`` ("unknown" when the api cannot say now)."""
    try:
        answer = stack.get(f"/jobs/{item}" if load.kind == "jobs" else f"/rows/{item}")
        return answer.json().get("status") or "missing"
    except (httpx.HTTPError, ValueError):
        return "unknown"


def is_done(stack: ComposeStack, load: Load, item: str | None) -> bool:
    """True when the job or row ``item`` has finished (failed counts as not done)."""
    return item is None or status(stack, load, item) in ("finished", "done")


def wait_done(stack: ComposeStack, load: Load, item: str | None, deadline: float) -> bool:
    """Poll until ``item`` is done or the deadline passes; True when done."""
    while not is_done(stack, load, item):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.3)
    return True


def wait_healthy(stack: ComposeStack, service: str, deadline: float) -> float:
    """When ``service`` passed its healthcheck again (is running, if it has none)."""
    while time.monotonic() < deadline:
        lines = stack.compose("ps", "--format", "json", check=False).splitlines()
        states = [orjson.loads(line) for line in lines if line.startswith("{")]
        mine = [s for s in states if s.get("Service") == service]
        if mine and all(
            s.get("Health") == "healthy" or (not s.get("Health") and s.get("State") == "running")
            for s in mine
        ):
            break
        time.sleep(0.2)
    return time.monotonic()


@dataclass(frozen=True)
class Fault:
    """One fault to run: ``how`` ("stop", "kill" or "slow": see SLOWED) on ``service`` while
    it runs ``replicas`` (one of them is faulted when there are several; all of it when one)."""

    service: str
    how: str = "stop"
    replicas: int = 1


def planned_faults(
    services: list[str], scalable: list[str], replica_counts: tuple[int, ...]
) -> list[Fault]:
    """The faults of a pattern, in order: with 1 replica every service stopped (and the
    ``scalable`` ones killed too); then with each larger count, every scalable one
    stopped and killed."""
    faults = []
    if 1 in replica_counts:
        for service in services:
            faults += [
                Fault(service, how) for how in FAULTS if how == "stop" or service in scalable
            ]
    for replicas in sorted(n for n in replica_counts if n > 1):
        faults += [Fault(service, how, replicas) for service in scalable for how in FAULTS]
    return faults


def take_down(stack: ComposeStack, planned: Fault) -> str | None:
    """Stop or kill ``planned.service`` (its first replica when there are several); the
    container faulted, or None when the whole service was."""
    if planned.how == "slow":
        with stack.overridden(**SLOWED[stack.pattern, planned.service]):
            stack.compose("up", "-d", "--wait", "--no-deps", planned.service)
        return None
    if planned.replicas == 1:
        if planned.how == "stop":
            stack.compose("stop", planned.service)
        else:
            stack.compose("kill", "-s", "SIGKILL", planned.service)
        return None
    container = stack.containers(planned.service)[0]
    docker(planned.how, container)
    return container


def fault(
    stack: ComposeStack, load: Load, planned: Fault, callers: list[str] | None = None
) -> FaultResult:
    """Run ``planned``, wait DOWN_S, start the service (or replica) again, and measure until
    the pattern recovers; ``callers``: the services whose retries are counted."""
    service = planned.service
    retried_before = outbound_retries(stack, callers) if callers else 0.0
    began = time.monotonic()
    container = take_down(stack, planned)
    time.sleep(DOWN_S)
    if planned.how == "slow":  # recreated with the stack's own settings
        stack.compose("up", "-d", "--no-deps", service)
    elif container is None:
        stack.compose("start", service)
    else:
        docker("start", container)
    restarted = time.monotonic()
    healthy = wait_healthy(stack, service, restarted + RECOVERY_TIMEOUT_S)
    down_s = healthy - began
    rate = load.rate(began, healthy)
    recovery = wait_recovered(stack, load, restarted)
    rejoined = None
    if container is not None:
        rejoined = wait_serving(stack, container, restarted, ROTATION_TIMEOUT_S)
    window = load.between(began, time.monotonic())
    result = FaultResult(
        label(stack.pattern, stack.env.get("VARIANT", "")),
        service,
        requests=len(window),
        failed=sum(not s.ok for s in window),
        failures=dict(Counter(s.why for s in window if not s.ok)),
        recovery_s=None if recovery is None else round(recovery, 1),
        queued=load.kind != "sync",
        down_s=round(down_s, 1),
        request_rate=round(rate, 1),
        how=planned.how,
        replicas=planned.replicas,
        retries=round(outbound_retries(stack, callers) - retried_before) if callers else None,
        rejoined_s=None if rejoined is None else round(rejoined, 1),
    )
    print(f"  {service} {planned.how}, {planned.replicas} replica(s): {result}", flush=True)
    return result


def fault_under_load(stack: ComposeStack, planned: Fault) -> FaultResult:
    """``planned`` done to ``stack`` under a steady load that starts before it and stops after."""
    with Load(stack) as load:
        return fault(stack, load, planned)


def wait_recovered(stack: ComposeStack, load: Load, restarted: float) -> float | None:
    """Seconds from ``restarted`` until requests succeed again and the work queued before
    it is done (None: not within RECOVERY_TIMEOUT_S)."""
    backlog = load.last_accepted()  # queued before the restart: must be done to call it recovered
    deadline = restarted + RECOVERY_TIMEOUT_S
    answering = None
    drained = None if load.kind != "sync" and backlog is not None else restarted
    while time.monotonic() < deadline and (answering is None or drained is None):
        if answering is None:
            answering = load.recovered_since(restarted)
        if drained is None and is_done(stack, load, backlog):
            drained = time.monotonic()
        time.sleep(0.2)
    if answering is None or drained is None:
        return None
    return max(answering, drained - restarted)


def label(pattern: str, variant: str = "") -> str:
    """How the report names a pattern run in one of its variants."""
    return f"{pattern} ({variant})" if variant else pattern


def job_runs(stack: ComposeStack) -> Counter[str]:
    """How many times each job finished, from the workers' JSON logs."""
    runs: Counter[str] = Counter()
    for line in stack.logs("worker").splitlines():
        if line.startswith("{") and '"job finished"' in line:
            record = orjson.loads(line)
            if record.get("msg") == "job finished":
                runs[record["job_id"]] += 1
    return runs


def sql(stack: ComposeStack, query: str) -> str:
    """``query`` through psql in the postgres container; its unaligned output."""
    return stack.compose(
        "exec", "-T", "postgres", "psql", "-U", "mlsp", "-d", "mlsp", "-At", "-c", query
    ).strip()


def lost_and_duplicated(stack: ComposeStack, load: Load) -> tuple[int, int]:
    """Accepted jobs or rows never finished, and those finished more than once."""
    accepted = list(load.accepted)
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    if load.kind == "jobs":
        wait_done(stack, load, accepted[-1] if accepted else None, deadline)
        unfinished = {}
        for job_id in accepted:
            got = status(stack, load, job_id)
            if got != "finished":
                unfinished[job_id] = got
        if unfinished:
            print(f"  not finished: {dict(list(unfinished.items())[:10])}")
        lost = len(unfinished)
        runs = job_runs(stack)
        duplicated = sum(1 for job_id in accepted if runs[job_id] > 1)
        return lost, duplicated
    stack.post("/runs")
    while sql(stack, "SELECT count(*) FROM batch_inputs WHERE status = 'pending'") != "0":
        assert time.monotonic() < deadline, "rows still pending"
        time.sleep(0.5)
    ids = ",".join(accepted) or "0"
    done = int(sql(stack, f"SELECT count(*) FROM batch_inputs WHERE id IN ({ids}) AND "
                          "status = 'done'"))  # fmt: skip
    predicted = sql(
        stack,
        "SELECT count(*) - count(DISTINCT input_id) FROM batch_predictions "
        f"WHERE input_id IN ({ids})",
    )
    return len(accepted) - done, int(predicted)


def run_pattern(
    pattern: str,
    services: list[str] | None = None,
    replica_counts: tuple[int, ...] = (1,),
    variant: str = "",
) -> list[FaultResult]:
    """Bring ``pattern`` (in ``variant``) up and run its faults (:func:`planned_faults`) on
    ``services`` (default: every internal one) with each of ``replica_counts`` replicas;
    the replicas > 1 only where the pattern answers at once (queued work: 1 only)."""
    services = services if services is not None else internal_services(pattern)
    scalable = [s for s in scalable_services(compose_config(pattern, "")) if s in services]
    env = {**STACK_ENV, **({"VARIANT": variant} if variant else {})}
    print(f"=== {label(pattern, variant)}: faults on {', '.join(services) or 'nothing'}")
    results: list[FaultResult] = []
    with ComposeStack(pattern, **env) as stack:
        load = Load(stack).start()
        try:
            time.sleep(WARM_UP_S)
            answers_at_once = load.kind == "sync"
            counts = replica_counts if answers_at_once else (1,)
            current = 1
            planned_all = planned_faults(services, scalable if answers_at_once else [], counts)
            planned_all += [Fault(s, "slow") for s in services if (pattern, s) in SLOWED]
            for planned in planned_all:
                if planned.replicas != current:
                    current = planned.replicas
                    with_replicas(stack, scalable, current)
                results.append(fault(stack, load, planned, callers(pattern, planned.service)))
        finally:
            load.stop()
        if any(r.problems() for r in results if not r.queued):  # the evidence, for the why
            RESULTS.mkdir(parents=True, exist_ok=True)
            saved = RESULTS / f"{stack.project}-logs.txt"
            saved.write_text(stack.logs())
            print(f"  logs of the stack: {saved}")
        if load.kind != "sync" and results:
            lost, duplicated = lost_and_duplicated(stack, load)
            print(f"  {len(load.accepted)} accepted, {lost} lost, {duplicated} duplicated")
            for result in results:  # the whole run's totals, on each of its faults
                result.lost, result.duplicated = lost, duplicated
    return results


def with_replicas(stack: ComposeStack, services: list[str], count: int) -> None:
    """Scale ``services`` to ``count`` replicas under the load, and wait until they are
    healthy and every replica gets calls (and a few seconds more, so that every caller's
    channel has looked the replicas up again)."""
    print(f"  scaling {', '.join(services)} to {count} replicas", flush=True)
    scale(stack, dict.fromkeys(services, count))
    deadline = time.monotonic() + RECOVERY_TIMEOUT_S
    for service in services:
        wait_healthy(stack, service, deadline)
    idle = wait_in_rotation(stack, services, ROTATION_TIMEOUT_S)
    if idle:
        print(f"  no calls within {ROTATION_TIMEOUT_S:g} s to {idle}", flush=True)
    time.sleep(ROTATION_SETTLE_S)


def runs(names: list[str]) -> list[tuple[str, str]]:
    """``(pattern, variant)`` of each run: every pattern by default, those with variants
    (:data:`VARIANTS`) in each one, or the one ``pattern:variant`` names (or ``VARIANT``)."""
    chosen = os.environ.get("VARIANT", "")
    found = []
    for name in names or patterns():
        pattern, _, variant = name.partition(":")
        variants = (variant,) if variant else (chosen,) if chosen else VARIANTS.get(pattern, ("",))
        found += [(pattern, v) for v in variants]
    return found


def main() -> None:
    """``make chaos``: every fault of every pattern (or those named); the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("patterns", nargs="*", help="PATTERN or PATTERN:VARIANT (default: all)")
    parser.add_argument("--out", type=Path, default=REPORT)
    parser.add_argument("--services", nargs="*", help="default: every internal service")
    parser.add_argument(
        "--replicas",
        nargs="+",
        type=int,
        choices=(1, 2, 3),
        default=[1, 2],
        help="run the faults with each of these replica counts (default: 1 2)",
    )
    parser.add_argument(
        "--merge",
        nargs="+",
        type=Path,
        help="run nothing: one report from the results of earlier runs (their JSON files)",
    )
    args = parser.parse_args()
    if args.merge:
        runs_done = [orjson.loads(path.read_bytes()) for path in args.merge]
    else:
        runs_done = [run_suite(args.patterns, args.services, tuple(args.replicas))]
    results = [FaultResult(**fields) for run in runs_done for fields in run["results"]]
    settings = (
        f"{THREADS} threads, one row per request, {PAUSE_S * 1000:g} ms between requests; "
        + "; ".join(run["settings"] for run in runs_done)
        + " (a 2-core machine shared with other builds and tests: the times wander from run "
        "to run, the zeros do not)"
    )
    text = markdown(results, settings, DOWN_S, STEADY_S)
    write_report(args.out, text)
    problems = [problem for r in results for problem in r.problems()]
    print("\n".join(problems))
    raise SystemExit(1 if problems else 0)


def run_suite(
    names: list[str], services: list[str] | None, replica_counts: tuple[int, ...]
) -> dict[str, Any]:
    """Every fault of the patterns ``names`` (all by default): their results and how they
    were run, also written to ``loadtests/results/chaos/`` (for ``--merge``)."""
    started = time.gmtime()
    load_at_start = load_average()
    began = time.monotonic()
    results: list[FaultResult] = []
    for pattern, variant in runs(names):
        if not internal_services(pattern):
            print(f"=== {pattern}: no internal container, nothing to stop")
            results.append(FaultResult(pattern, "(no internal container)", 0, 0, 0.0))
            continue
        try:
            results += run_pattern(pattern, services, replica_counts, variant)
        except Exception as exc:  # one pattern failing to come up does not stop the others
            print(f"  {pattern} failed: {exc}"[:2000], flush=True)
            failure = f"(run failed: {type(exc).__name__})"
            results.append(FaultResult(label(pattern, variant), failure, 0, 0, None))
    done = {
        "settings": f"`python -m tests.chaos {' '.join(names) or '(every pattern)'} --replicas "
        f"{' '.join(map(str, replica_counts))}` started "
        f"{time.strftime('%Y-%m-%d %H:%M UTC', started)} at load average {load_at_start}, "
        f"took {(time.monotonic() - began) / 60:.0f} min, load average {load_average()} at "
        "the end",
        "results": [dataclasses.asdict(r) for r in results],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{time.strftime('%Y%m%dT%H%M%S', started)}.json").write_bytes(orjson.dumps(done))
    return done


if __name__ == "__main__":
    main()
