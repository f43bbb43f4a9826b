"""The async pattern's jobs/s and the worker's cost per job, two checkouts side by side.

    python -m loadtests.bench.async_jobs BEFORE_DIR:BEFORE_TAG AFTER_DIR:AFTER_TAG \\
        [--rounds 2] [--users 16] [--duration 30s] [--port 18300] [--report PATH]

Each checkout's async stack is brought up under its own ``MLSP_TAG`` and compose
project, loaded with ``make load PATTERN=async`` (same users, duration and warm-up),
and taken down; the checkouts take turns, ``--rounds`` times, so both see the same
minutes of a shared machine. Around each load the workers' ``/metrics`` are read
(``docker exec``), so the worker's time per job (the ``job`` stage, a batch's time
shared by its jobs), the inference inside it and the jobs per batch are those of the
recorded run alone; so is the api's CPU time per job (its ``process_cpu_seconds_total``),
beside the polls a job took (``GET /jobs/[id]`` requests per completed job). Each
checkout runs its own scenario: a checkout whose scenario long-polls (``POLL_WAIT_S``)
does, one that does not polls every ``POLL_SECONDS``. Writes
``loadtests/reports/async-jobs.md`` (``--report``: elsewhere).
"""

from __future__ import annotations

import argparse
import csv
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from loadtests.measured import load_average
from tests.compose_stack import container_metrics
from tests.metrics_text import sample_total

REPORT = Path(__file__).resolve().parents[1] / "reports" / "async-jobs.md"
E2E = "E2E"  # the Locust type of the end-to-end entry ("job completed")
POLL = "GET /jobs/[id]"  # the Locust name of a poll
#: Run in the api container: queue DRAIN_JOBS jobs at once (as the api queues them), then
#: wait until the workers have finished them all; prints the seconds that took.
_DRAIN = """
import os, sys, time
import redis
from rq import Queue, Retry
n = int(sys.argv[1])
client = redis.Redis.from_url(os.environ["REDIS_URL"])
queue = Queue(os.environ.get("QUEUE_NAME", "predict"), connection=client)
done_before = queue.finished_job_registry.count
started = time.perf_counter()
with client.pipeline() as pipe:
    for _ in range(n):
        queue.enqueue_call("tasks.predict", args=([[5.1, 3.5, 1.4, 0.2]],), timeout=30,
                           result_ttl=600, failure_ttl=600, retry=Retry(max=2), pipeline=pipe)
    pipe.execute()
while queue.finished_job_registry.count < done_before + n:
    if time.perf_counter() - started > 300:
        sys.exit("the workers did not finish the jobs in 300 s")
    time.sleep(0.05)
print(time.perf_counter() - started)
"""


@dataclass
class Checkout:
    """A checkout of the playground and the tag its images are built under."""

    folder: Path
    tag: str

    @property
    def project(self) -> str:
        return f"mlsp-async-{self.tag}"

    def env(self, port: int) -> dict[str, str]:
        return {
            **os.environ,
            "MLSP_TAG": self.tag,
            "COMPOSE_PROJECT_NAME": self.project,
            "API_PORT": str(port),
        }


@dataclass
class Run:
    """One load run of one checkout: the client's figures and the workers'."""

    checkout: Checkout
    jobs_per_s: float
    e2e_p50_ms: float
    e2e_p99_ms: float
    failures: int
    worker_ms_per_job: float
    worker_cpu_ms_per_job: float
    inference_ms_per_job: float
    jobs_per_batch: float | None
    drain_jobs_per_s: float
    polls_per_job: float
    api_cpu_ms_per_job: float | None
    load_average: str


def compose(checkout: Checkout, port: int, *args: str) -> str:
    """``docker compose ARGS`` on the checkout's async stack; its output."""
    return subprocess.run(
        ["./compose/compose.sh", "-f", "patterns/async/compose.yaml", *args],
        cwd=checkout.folder, env=checkout.env(port), capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


def workers_metrics(checkout: Checkout, port: int) -> dict[str, float]:
    """Sums over the running workers of the samples this report reads."""
    ids = compose(checkout, port, "ps", "-q", "worker").split()
    wanted = {  # key: (sample name, its labels)
        "job_sum": ("mlsp_stage_duration_seconds_sum", {"stage": "job"}),
        "job_count": ("mlsp_stage_duration_seconds_count", {"stage": "job"}),
        "inference_sum": ("mlsp_stage_duration_seconds_sum", {"stage": "inference"}),
        "batch_sum": ("mlsp_worker_batch_jobs_sum", {}),
        "batch_count": ("mlsp_worker_batch_jobs_count", {}),
        "cpu_seconds": ("process_cpu_seconds_total", {}),
    }
    pages = [container_metrics(container) for container in ids]
    return {
        key: sum(sample_total(page, name, **labels) for page in pages)
        for key, (name, labels) in wanted.items()
    }


def api_cpu_seconds(checkout: Checkout, port: int) -> float:
    """The api processes' CPU time so far, summed over the api containers (0: not
    published, as when several processes share one port)."""
    ids = compose(checkout, port, "ps", "-q", "api").split()
    return sum(
        sample_total(container_metrics(container), "process_cpu_seconds_total") for container in ids
    )


def stats_row(stats_csv: Path, name: str, kind: str | None = None) -> dict[str, str]:
    """The row called ``name`` (of Locust type ``kind``, when given) of a stats CSV."""
    with stats_csv.open() as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == name and kind in (None, row["Type"]):
                return row
    raise SystemExit(f"{stats_csv}: no {name!r} row")


def measure(checkout: Checkout, args: argparse.Namespace, out: str) -> Run:
    """Up, load, down one checkout's stack; its figures."""
    env = checkout.env(args.port)

    def make(*targets: str) -> None:
        subprocess.run(["make", "-s", *targets, "PATTERN=async", f"VENV={args.venv}"],
                       cwd=checkout.folder, env=env, check=True)  # fmt: skip

    make("up")
    first = workers_metrics(checkout, args.port)
    api_first = api_cpu_seconds(checkout, args.port)
    loads = [load_average(one_minute=True)]
    make("load", f"USERS={args.users}", f"DURATION={args.duration}", "WARMUP=5s", f"OUT={out}")
    loads.append(load_average(one_minute=True))
    last = workers_metrics(checkout, args.port)
    api_cpu = api_cpu_seconds(checkout, args.port) - api_first
    drained_in = float(compose(checkout, args.port, "exec", "-T", "api", "python", "-c", _DRAIN,
                               str(args.drain_jobs)).split()[-1])  # fmt: skip
    loads.append(load_average(one_minute=True))
    make("down", "WIPE=1")
    delta = {key: last[key] - first[key] for key in last}
    stats_csv = checkout.folder / "loadtests" / "results" / f"{out}_stats.csv"
    row = stats_row(stats_csv, "job completed", E2E)
    polls = stats_row(stats_csv, POLL)
    jobs = max(delta["job_count"], 1.0)
    return Run(
        checkout=checkout,
        jobs_per_s=float(row["Requests/s"]),
        e2e_p50_ms=float(row["50%"]),
        e2e_p99_ms=float(row["99%"]),
        failures=int(row["Failure Count"]),
        worker_ms_per_job=1000 * delta["job_sum"] / jobs,
        worker_cpu_ms_per_job=1000 * delta["cpu_seconds"] / jobs,
        inference_ms_per_job=1000 * delta["inference_sum"] / jobs,
        jobs_per_batch=delta["batch_sum"] / delta["batch_count"] if delta["batch_count"] else None,
        drain_jobs_per_s=args.drain_jobs / drained_in,
        polls_per_job=int(polls["Request Count"]) / max(int(row["Request Count"]), 1),
        api_cpu_ms_per_job=1000 * api_cpu / jobs if api_cpu > 0 else None,
        load_average=" to ".join(loads),
    )


def markdown(runs: list[Run], args: argparse.Namespace, started: str) -> str:
    """The report: one row per run, then the ratios of the medians."""
    lines = [
        "# async: jobs/s and the worker's cost per job, before and after",
        "",
        f"Run: {started} UTC, `python -m loadtests.bench.async_jobs` (each checkout: `make up`, "
        f"`make load PATTERN=async USERS={args.users} DURATION={args.duration} WARMUP=5s`, "
        f"`make down WIPE=1`; the two in turns, {args.rounds} rounds), two workers each, "
        "2 cores shared with other engineers' stacks and tests.  ",
        "Worker ms/job: the workers' `job` stage over the recorded run (wall time; a "
        "batch's time shared by its jobs), read from their /metrics before and after it; "
        "inference: the onnxruntime call inside it; CPU ms/job: the worker processes' CPU "
        "time (`process_cpu_seconds_total`, everything they did, idle polling included) "
        "over the jobs they ran, the figure a busy machine distorts least. Drain jobs/s: "
        f"after the load, {args.drain_jobs} jobs queued at once (one pipeline, from the api "
        "container) and the time until the two workers finished them all: the workers' "
        "rate with a full queue, without the api in the way. Polls/job: the scenario's "
        "`GET /jobs/[id]` requests per completed job; api CPU ms/job: the api process's CPU "
        "time (`process_cpu_seconds_total`) over the run, per job the workers ran.",
        "",
        "| checkout | jobs/s | end-to-end p50 | p99 | failures | polls/job | api CPU ms/job "
        "| worker ms/job | of which inference | worker CPU ms/job | jobs per batch "
        "| drain jobs/s | load average |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for run in runs:
        batch = f"{run.jobs_per_batch:.1f}" if run.jobs_per_batch is not None else "1 (no batches)"
        api_cpu = f"{run.api_cpu_ms_per_job:.2f}" if run.api_cpu_ms_per_job is not None else "n/a"
        lines.append(
            f"| {run.checkout.tag} | {run.jobs_per_s:.0f} | {run.e2e_p50_ms:.0f} ms "
            f"| {run.e2e_p99_ms:.0f} ms | {run.failures} | {run.polls_per_job:.2f} | {api_cpu} "
            f"| {run.worker_ms_per_job:.2f} "
            f"| {run.inference_ms_per_job:.3f} | {run.worker_cpu_ms_per_job:.2f} | {batch} "
            f"| {run.drain_jobs_per_s:.0f} | {run.load_average} |"
        )
    before, after = ([r for r in runs if r.checkout.tag == tag] for tag in args.tags)
    lines += [
        "",
        "| ratio (after / before, medians of the rounds) | value | goal |",
        "|---|---:|---|",
    ]
    lines.append(
        f"| jobs/s | {_median(after, 'jobs_per_s') / _median(before, 'jobs_per_s'):.2f} | >= 2 |"
    )
    lines.append(
        f"| end-to-end p50 | {_median(after, 'e2e_p50_ms'):.0f} ms after, "
        f"{_median(before, 'e2e_p50_ms'):.0f} ms before | (report) |"
    )
    lines.append(
        f"| polls per job | {_median(after, 'polls_per_job'):.2f} after, "
        f"{_median(before, 'polls_per_job'):.2f} before | (report) |"
    )
    if all(run.api_cpu_ms_per_job is not None for run in runs):
        lines.append(
            f"| api CPU ms/job | {_median(after, 'api_cpu_ms_per_job'):.2f} ms after, "
            f"{_median(before, 'api_cpu_ms_per_job'):.2f} ms before | (report) |"
        )
    drain = _median(after, "drain_jobs_per_s") / _median(before, "drain_jobs_per_s")
    lines.append(f"| drain jobs/s (the workers alone, a full queue) | {drain:.2f} | (report) |")
    lines.append(
        f"| worker ms/job | {_median(after, 'worker_ms_per_job'):.2f} ms after, "
        f"{_median(before, 'worker_ms_per_job'):.2f} ms before | <= 2 ms |"
    )
    lines.append(
        f"| worker CPU ms/job | {_median(after, 'worker_cpu_ms_per_job'):.2f} ms after, "
        f"{_median(before, 'worker_cpu_ms_per_job'):.2f} ms before | (report) |"
    )
    return "\n".join(lines) + "\n"


def _median(runs: list[Run], field: str) -> float:
    values = sorted(getattr(run, field) for run in runs)
    middle = len(values) // 2
    return values[middle] if len(values) % 2 else (values[middle - 1] + values[middle]) / 2


def checkout_arg(text: str) -> Checkout:
    """``DIR:TAG`` as a :class:`Checkout`."""
    folder, _, tag = text.rpartition(":")
    if not folder or not tag:
        raise argparse.ArgumentTypeError("expected DIR:TAG")
    return Checkout(Path(folder).resolve(), tag)


def main() -> None:
    """Run the rounds and write the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=checkout_arg)
    parser.add_argument("after", type=checkout_arg)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--duration", default="30s")
    parser.add_argument("--port", type=int, default=18300)
    parser.add_argument("--drain-jobs", type=int, default=3000)
    parser.add_argument("--venv", default="/work/main/.venv")
    parser.add_argument("--report", type=Path, default=REPORT, help="where to write the report")
    args = parser.parse_args()
    args.tags = (args.before.tag, args.after.tag)
    started = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    runs = []
    for round_number in range(1, args.rounds + 1):
        for checkout in (args.before, args.after):
            run = measure(checkout, args, f"async-jobs/{checkout.tag}-{round_number}")
            print(run, flush=True)
            runs.append(run)
    args.report.write_text(markdown(runs, args, started))
    print(f"Report: {args.report}")


if __name__ == "__main__":
    main()
