"""``make shadow-bench``: what shadowing costs the primary, measured side by side in one run.

    python -m loadtests.bench.shadow [--port 8000] [--users 8] [--seconds 20] [--rounds 3]
        [--rate R]

Brings the shadow pattern up in a project of its own and runs the same closed loop
(``--users`` clients sending one iris row back to back, :func:`loadtests.openloop.closed_loop`,
every latency kept; or with ``--rate``, an open loop of that many requests/s, to see the
latency below capacity) against it, one run after the other:

* ``off`` (``SHADOW_SHARE=0``), ``on`` (``SHADOW_SHARE=1``, the compose default
  ``SHADOW_WINDOW_MS``: the rows of a window mirrored in one call) and ``on, a call per
  request`` (``SHADOW_WINDOW_MS=0``), alternated ``--rounds`` times so that the machine's
  drift falls on all three;
* ``on, candidate slow``: the candidate answers ``--slow-ms`` late (its predictor's
  ``DELAY_MS``), past the mirror's deadline;
* ``on, candidate stopped``.

Each run's figures are the client's (requests/s, p50, p99, failed requests) and the
api's ``/metrics`` over the run (the candidate's latency, the mirrored calls' outcomes).
Then the 150 rows of the iris data set go through ``/predict`` once, and the report
shows the agreement and confusion table of primary against candidate on them.
Writes ``loadtests/reports/shadow.md`` with the date, the settings and the load average.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson

from loadtests.bench.overload import Stack
from loadtests.measured import write_report
from loadtests.openloop import LoopFigures, bench_parser, closed_loop, measured_load, ms
from loadtests.shadow_report import ShadowFigures, parse, read_metrics, render

ROOT = Path(__file__).resolve().parents[2]
REPORT = ROOT / "loadtests" / "reports" / "shadow.md"
BODY = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
WARMUP_SECONDS = 3.0
GOAL_P50_RATIO = 1.10
OFF, ON, PER_REQUEST = "off", "on", "on, a call per request"
#: The settings of each run that alternates (the compose file's own default window for ON).
SETTINGS = {
    OFF: {"SHADOW_SHARE": "0"},
    ON: {"SHADOW_SHARE": "1"},
    PER_REQUEST: {"SHADOW_SHARE": "1", "SHADOW_WINDOW_MS": "0"},
}


@dataclass(slots=True)
class Run:
    """One measured run: its name, settings and figures."""

    name: str
    settings: dict[str, str]
    figures: LoopFigures = field(default_factory=LoopFigures)
    shadow: ShadowFigures = field(default_factory=ShadowFigures)


def difference(after: ShadowFigures, before: ShadowFigures) -> ShadowFigures:
    """What the counters and histograms of ``after`` gained since ``before`` (one api)."""
    rows = {k: v - before.rows.get(k, 0.0) for k, v in after.rows.items()}
    mirrors = {k: v - before.mirrors.get(k, 0.0) for k, v in after.mirrors.items()}
    mirrored_rows = {
        k: v - before.mirrored_rows.get(k, 0.0) for k, v in after.mirrored_rows.items()
    }
    buckets = {}
    for model, counts in after.buckets.items():
        earlier = dict(before.buckets.get(model, []))
        buckets[model] = [(bound, n - earlier.get(bound, 0.0)) for bound, n in counts]
    return ShadowFigures(rows, buckets, mirrors, mirrored_rows)


def measure(
    stack: Stack,
    run: Run,
    url: str,
    users: int,
    seconds: float,
    *,
    bring_up: bool = True,
    rate: float = 0.0,
) -> Run:
    """Bring the stack to ``run``'s settings (unless not ``bring_up``), warm it up, measure."""
    if bring_up:
        stack.run("up", "--build", "--wait", "--remove-orphans", **run.settings)
    asyncio.run(closed_loop(f"{url}/predict", BODY, users, WARMUP_SECONDS))
    before = parse(read_metrics(url))
    run.figures = measured_load(f"{url}/predict", BODY, users, seconds, run.name, rate=rate)
    run.shadow = difference(parse(read_metrics(url)), before)
    return run


def iris_agreement(url: str) -> ShadowFigures:
    """Agreement of the two models on the 150 rows of the iris data set."""
    from sklearn.datasets import load_iris  # noqa: PLC0415 - only the report needs it

    before = parse(read_metrics(url))
    body = orjson.dumps({"instances": load_iris().data.tolist()})
    request = urllib.request.Request(
        f"{url}/predict", body, {"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        answer.read()
    deadline = time.monotonic() + 10
    while (figures := difference(parse(read_metrics(url)), before)).compared < 150:
        if time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return figures


def p50s(runs: list[Run], name: str) -> list[float]:
    """The measured p50s of the runs called ``name``, in the order they ran."""
    return [r.figures.p50_ms for r in runs if r.name == name and r.figures.p50_ms]


def paired_ratios(runs: list[Run], name: str) -> list[float]:
    """Per round, the p50 of the run called ``name`` over the ``off`` run of the same round:
    the two ran one after the other, so the machine's drift mostly falls on both."""
    return [each / off for each, off in zip(p50s(runs, name), p50s(runs, OFF), strict=False)]


def p50_verdict(ratios: list[float]) -> str:
    """Whether the p50 goal is met by the median of the rounds' paired ratios."""
    median = statistics.median(ratios)
    rounds = ", ".join(f"{r:.2f}" for r in ratios)
    met = "met" if median <= GOAL_P50_RATIO else "NOT met"
    return f"{median:.2f} (rounds: {rounds}; goal <= {GOAL_P50_RATIO:.2f}): {met}"


def markdown(runs: list[Run], iris: ShadowFigures, settings: str) -> str:
    """The report: one row per run, the goals, the agreement on iris."""
    p50 = {name: statistics.median(p50s(runs, name)) for name in (OFF, ON, PER_REQUEST)}
    spread = max(p50s(runs, OFF)) / min(p50s(runs, OFF))
    lines = [
        "# Shadow: what mirroring to a candidate costs the primary",
        "",
        f"Generated by `make shadow-bench` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. {settings}",
        "",
        "| run | requests/s | p50 (ms) | p99 (ms) | failed | candidate call p50 (ms) | mirrored "
        "calls (rows): ok / failed / timeout / dropped | load average |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in runs:
        calls, rows = r.shadow.mirrors, r.shadow.mirrored_rows
        outcomes = " / ".join(
            f"{calls.get(k, 0):.0f} ({rows.get(k, 0):.0f})"
            for k in ("ok", "failed", "timeout", "dropped")
        )
        lines.append(
            f"| {r.name} | {r.figures.cells()} | {ms(r.shadow.quantile_ms('candidate', 0.5))} | "
            f"{outcomes} | {r.figures.load_average:.1f} |"
        )
    degraded = [r for r in runs if "candidate" in r.name]
    lines += [
        "",
        "Goals:",
        "",
        "- primary p50 with shadowing on over off, each round's two runs one after the other "
        f"(median of the rounds): {p50_verdict(paired_ratios(runs, ON))}",
        f"  (medians of the runs: on {p50[ON]:.2f} ms, off {p50[OFF]:.2f} ms; the off runs "
        f"alone varied by {spread:.2f}x between rounds: the machine's noise)",
        "- the same with a call per request (SHADOW_WINDOW_MS=0): "
        f"{statistics.median(paired_ratios(runs, PER_REQUEST)):.2f} "
        f"(medians of the runs: {p50[PER_REQUEST]:.2f} ms, off {p50[OFF]:.2f} ms)",
        "- failed requests with the candidate slow or stopped: "
        f"{sum(r.figures.failed for r in degraded)} (goal 0): "
        f"{'met' if degraded and not any(r.figures.failed for r in degraded) else 'NOT met'}",
        "",
        "## The two models on the 150 rows of the iris data set",
        "",
        render(iris),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Run every run, write the report."""
    parser = bench_parser(
        __doc__.split("\n")[0], seconds=20.0, rounds=3, rounds_are="off/on/per-request turns"
    )
    parser.add_argument("--slow-ms", type=int, default=2000, help="the slow candidate's delay")
    parser.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="requests/s of an open loop over --users connections instead of the closed "
        "loop: latency below capacity, where the closed loop measures it at saturation",
    )
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args(argv)
    stack = Stack("shadow", args.port, purpose="bench")
    url = f"http://127.0.0.1:{args.port}"
    plan = [Run(name, dict(settings)) for _ in range(args.rounds)
            for name, settings in SETTINGS.items()]  # fmt: skip
    slow = {"SHADOW_SHARE": "1", "CANDIDATE_DELAY_MS": str(args.slow_ms)}
    plan.append(Run("on, candidate slow", slow))
    try:
        runs = [measure(stack, run, url, args.users, args.seconds, rate=args.rate) for run in plan]
        stack.run("up", "--wait", SHADOW_SHARE="1")  # the candidate as it was
        iris = iris_agreement(url)
        stack.run("stop", "candidate")
        stopped = Run("on, candidate stopped", {"SHADOW_SHARE": "1"})
        runs.append(
            measure(stack, stopped, url, args.users, args.seconds, bring_up=False, rate=args.rate)
        )
    finally:
        stack.down()
    load = (
        f"{args.rate:g} requests/s at a fixed rate (open loop) over {args.users} connections"
        if args.rate
        else f"{args.users} clients back to back (at saturation)"
    )
    settings = (
        f"{load} from the host (one iris row per request, "
        f"{args.seconds:g} s per run after a {WARMUP_SECONDS:g} s warm-up), runs one after "
        f"the other on one stack; off/on alternated {args.rounds} times; the slow candidate "
        f"answers {args.slow_ms} ms late (DELAY_MS; the mirror's deadline is "
        "CANDIDATE_TIMEOUT_S=1.0 s); compose defaults otherwise (SHADOW_MAX_IN_FLIGHT=64, "
        f"the candidate capped at 0.5 CPU). {os.cpu_count()} cores shared with other work: "
        "the load average is `os.getloadavg()` at the end of each run."
    )
    text = markdown(runs, iris, settings)
    write_report(args.out, text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
