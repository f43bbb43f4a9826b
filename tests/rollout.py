"""A model version rolled out under load: sync's replicas beside web-single's one container.

``python -m tests.rollout`` (``make rollout-report``) brings up sync with two predictor
replicas and web-single, one after the other in the same run, puts the fault suite's
steady load on each (:class:`tests.chaos.Load`, every answer's ``model_version``
recorded), runs ``compose/rollout.py`` (what ``make rollout`` runs) to version 2 and
back to 1, and writes ``loadtests/reports/rollout.md``: per change, the requests that
failed, the longest gap between two answers, and when the answers switched version.
``tests/test_rollout_e2e.py`` runs sync's changes under the e2e marker and asserts no
request failed.
"""

import argparse
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

from loadtests.measured import load_average, write_report
from tests.chaos import PAUSE_S, THREADS, Load, Sample
from tests.compose_stack import COMPOSE_SH, REPO_ROOT, ComposeStack

REPORT = REPO_ROOT / "loadtests" / "reports" / "rollout.md"
REPLICAS = 2
LEAD_S = 2.0  # load recorded before the change starts
SETTLE_S = 3.0  # and after it ends
BUCKET_S = 2.0  # the timeline's resolution


@dataclass
class RolloutResult:
    """What one version change did to the answers of a pattern under load."""

    pattern: str
    change: str  # "1 -> 2"
    exit_code: int
    log: list[str]
    samples: list[Sample] = field(repr=False)
    began: float = field(repr=False)
    took_s: float = 0.0

    @property
    def failed(self) -> int:
        """Requests that got no answer, or an error."""
        return sum(not s.ok for s in self.samples)

    @property
    def longest_gap_s(self) -> float:
        """The longest time without an answer (between two successful answers)."""
        answered = sorted(s.done for s in self.samples if s.ok)
        return max((b - a for a, b in pairwise(answered)), default=0.0)

    def answered(self, version: str) -> list[float]:
        """When (seconds from the start of the change) answers of ``version`` came."""
        return sorted(s.done - self.began for s in self.samples if s.ok and s.version == version)

    def last_version(self) -> str:
        """The version of the last answer."""
        done = [s for s in self.samples if s.ok]
        return max(done, key=lambda s: s.done).version if done else ""

    def timeline(self) -> list[tuple[float, Counter[str]]]:
        """Per :data:`BUCKET_S` from the start of the change: answers by version, failures."""
        buckets: dict[int, Counter[str]] = {}
        for s in self.samples:
            key = int((s.sent - self.began) // BUCKET_S)
            buckets.setdefault(key, Counter())[f"v{s.version}" if s.ok else "failed"] += 1
        return [(key * BUCKET_S, buckets[key]) for key in sorted(buckets)]


def roll(stack: ComposeStack, version: str) -> subprocess.CompletedProcess[str]:
    """``make rollout`` on ``stack``: ``compose/rollout.py`` with the stack's project."""
    command = [sys.executable, "-m", "compose.rollout", stack.pattern, "--version", version]
    return stack.run(*command, "--", str(COMPOSE_SH), "-f", str(stack.compose_file), timeout_s=600)


def rollout_under_load(stack: ComposeStack, load: Load, old: str, new: str) -> RolloutResult:
    """Roll ``stack`` from version ``old`` to ``new`` while ``load`` runs; what it did."""
    time.sleep(LEAD_S)
    began = time.monotonic()
    done = roll(stack, new)
    took = time.monotonic() - began
    time.sleep(SETTLE_S)
    result = RolloutResult(
        stack.pattern,
        f"{old} -> {new}",
        done.returncode,
        (done.stdout + done.stderr).strip().splitlines(),
        load.between(began - LEAD_S, time.monotonic()),
        began,
        round(took, 1),
    )
    print(
        f"  {stack.pattern} {result.change}: {len(result.samples)} requests, "
        f"{result.failed} failed, longest gap {result.longest_gap_s:.2f} s, exit {done.returncode}",
        flush=True,
    )
    return result


def scaled_up(pattern: str) -> ComposeStack:
    """A started stack of ``pattern``; sync with :data:`REPLICAS` predictors."""
    stack = ComposeStack(pattern).__enter__()
    if pattern == "sync":
        stack.compose("up", "--wait", "--no-build", "--scale", f"predictor={REPLICAS}")
    return stack


def run_pattern(pattern: str) -> list[RolloutResult]:
    """Version 2, then back to 1, on ``pattern`` under load."""
    print(f"=== {pattern}: rollout to 2 and back to 1 under load", flush=True)
    stack = scaled_up(pattern)
    try:
        load = Load(stack).start()
        try:
            return [
                rollout_under_load(stack, load, "1", "2"),
                rollout_under_load(stack, load, "2", "1"),
            ]
        finally:
            load.stop()
    finally:
        stack.__exit__(None, None, None)


def _seconds(times: list[float]) -> str:
    return f"{times[0]:.1f}" if times else "-"


def markdown(results: list[RolloutResult], settings: str, load_average: list[str]) -> str:
    """The report: one row per change, then each change's timeline and log."""
    lines = [
        "# Rolling update under load",
        "",
        f"Generated by `make rollout-report` (tests/rollout.py) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC. Load: {settings}, on each pattern in turn "
        f"from {LEAD_S:g} s before the change until {SETTLE_S:g} s after it. sync runs "
        f"{REPLICAS} predictor replicas, replaced one at a time (`make rollout PATTERN=sync "
        "MODEL_VERSION=2`: a new replica is healthy before an old one drains and stops); "
        "web-single has one container, which the same command restarts. Load average "
        f"(1, 5, 15 min) before and after: {load_average[0]} / {load_average[-1]}.",
        "",
        "*Failed*: requests without an answer. *Longest gap*: the longest time between two "
        "answers. *First new* / *last old*: seconds from the start of the change to the "
        "first answer of the new version and to the last answer of the old one.",
        "",
        "| pattern | change | requests | failed | longest gap (s) | first new (s) "
        "| last old (s) | change took (s) | answers end on |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in results:
        old, new = r.change.split(" -> ")
        last_old = r.answered(old)
        lines.append(
            f"| {r.pattern} | {r.change} | {len(r.samples)} | {r.failed} | "
            f"{r.longest_gap_s:.2f} | {_seconds(r.answered(new))} | "
            f"{f'{last_old[-1]:.1f}' if last_old else '-'} | {r.took_s:.1f} | "
            f"v{r.last_version()} |"
        )
    for r in results:
        lines += ["", f"## {r.pattern}, {r.change}", "", "| from (s) | answers |", "|---:|---|"]
        for start, counts in r.timeline():
            shown = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))
            lines.append(f"| {start:+.0f} | {shown} |")
        lines += ["", "```", *r.log, "```"]
    return "\n".join(lines) + "\n"


def main() -> int:
    """``make rollout-report``: sync and web-single, the report."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("patterns", nargs="*", default=["sync", "web-single"])
    parser.add_argument("--out", type=Path, default=REPORT)
    args = parser.parse_args()
    averages = [load_average()]
    results = [result for pattern in args.patterns for result in run_pattern(pattern)]
    averages.append(load_average())
    settings = f"{THREADS} threads, one row per request, {PAUSE_S * 1000:g} ms between requests"
    text = markdown(results, settings, averages)
    write_report(args.out, text)
    return 0 if all(r.exit_code == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
