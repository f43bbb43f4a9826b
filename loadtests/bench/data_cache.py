"""data-cache with a cold cache and a warm one, for both variants, in one run.

    make bench-data-cache                    # or: python -m loadtests.bench.data_cache --port 8000

For each ``CACHE_VARIANT`` (``raw``, then ``tensor``) it brings the data-cache
stack up with that variant (``compose/compose.sh``; only the api is
recreated), empties Redis (``FLUSHALL``), sends a few unrecorded requests for
other ids, then ``--requests`` sequential ``POST /predict`` requests of one
id each over the ids ``0 .. N-1`` (cold: every one a miss), then the same ids
again (warm: every one a hit). It prints the p50 and p99 of the whole request
as the host's client saw it (through the published port), and what the api
spent per request in each stage (``mlsp_stage_duration_seconds``: database
fetch, cache lookup, preprocessing, inference), as a markdown table. Leaves
the stack up with the default variant.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from loadtests.bench.parallel import percentile

__all__ = ["Phase", "format_table", "main", "stage_seconds"]

REPO_ROOT = Path(__file__).resolve().parents[2]
COMPOSE = [str(REPO_ROOT / "compose" / "compose.sh"), "-f", "patterns/data-cache/compose.yaml"]
VARIANTS = ("raw", "tensor")
STAGES = ("db_fetch", "cache_lookup", "preprocess", "inference")
_STAGE_SUM = re.compile(r'^mlsp_stage_duration_seconds_sum\{stage="([a-z_]+)"\} (\S+)$', re.M)


@dataclass
class Phase:
    """One pass over the ids: client latencies (ms), X-Cache answers, api time per stage (s)."""

    variant: str
    cache: str
    latencies: list[float]
    answers: dict[str, int]
    stages: dict[str, float]

    def row(self) -> list[str]:
        """Variant, cache state, X-Cache answers, p50, p99, then ms per request in each stage."""
        count = len(self.latencies)
        answers = ", ".join(f"{n} {name}" for name, n in sorted(self.answers.items()))
        per_request = [self.stages.get(name, 0.0) * 1000 / count for name in STAGES]
        return [
            self.variant,
            self.cache,
            answers,
            f"{percentile(self.latencies, 50):.2f}",
            f"{percentile(self.latencies, 99):.2f}",
            *(f"{ms:.3f}" for ms in per_request),
        ]


def format_table(phases: Sequence[Phase]) -> str:
    """A markdown table of the phases (times in ms; stages: the api's time per request)."""
    header = ["variant", "cache", "X-Cache", "p50", "p99", *(f"{s} (api)" for s in STAGES)]
    lines = [header, ["---", "---", "---", *["---:"] * (len(header) - 3)]]
    lines += [phase.row() for phase in phases]
    return "\n".join("| " + " | ".join(line) + " |" for line in lines)


def stage_seconds(metrics: str) -> dict[str, float]:
    """Seconds spent so far in each stage, from the api's ``/metrics`` text."""
    return {name: float(value) for name, value in _STAGE_SUM.findall(metrics)}


def compose(*args: str, **env: str) -> str:
    """``docker compose`` on the data-cache stack, with ``env`` on top of ours."""
    result = subprocess.run(
        [*COMPOSE, *args],
        cwd=REPO_ROOT,
        env={**os.environ, **env},
        check=True,
        stdout=subprocess.PIPE,
        text=True,
    )
    return result.stdout


def run_phase(client: httpx.Client, variant: str, cache: str, ids: Sequence[int]) -> Phase:
    """One sequential request per id; the stages' time is the api's /metrics difference."""
    before = stage_seconds(client.get("/metrics").text)
    phase = Phase(variant, cache, [], {}, {})
    for item_id in ids:
        body = b'{"ids": [%d]}' % item_id
        started = time.perf_counter()
        answer = client.post("/predict", content=body)
        phase.latencies.append((time.perf_counter() - started) * 1000)
        answer.raise_for_status()
        result = answer.headers.get("x-cache", "none")
        phase.answers[result] = phase.answers.get(result, 0) + 1
    after = stage_seconds(client.get("/metrics").text)
    phase.stages = {name: after.get(name, 0.0) - before.get(name, 0.0) for name in after}
    return phase


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=int(os.environ.get("API_PORT", "8000")))
    parser.add_argument("--requests", type=int, default=500, help="ids per pass (0 .. N-1)")
    parser.add_argument("--warmup", type=int, default=50, help="unrecorded requests, other ids")
    args = parser.parse_args(argv)
    if not 1 <= args.requests <= 1797 - args.warmup:
        parser.error("--requests plus --warmup must fit in the 1797 items")
    ids = range(args.requests)
    warmup_ids = range(1797 - args.warmup, 1797)
    env = {"API_PORT": str(args.port)}
    phases = []
    with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=10) as client:
        for variant in VARIANTS:
            compose("up", "--build", "--wait", "--remove-orphans", CACHE_VARIANT=variant, **env)
            compose("exec", "-T", "redis", "redis-cli", "FLUSHALL", **env)
            run_phase(client, variant, "warm-up", warmup_ids)
            phases.append(run_phase(client, variant, "cold", ids))
            phases.append(run_phase(client, variant, "warm", ids))
            print(f"{variant}: done", file=sys.stderr)
    compose("up", "--wait", "--remove-orphans", **env)
    print(format_table(phases))
    return 0


if __name__ == "__main__":
    sys.exit(main())
