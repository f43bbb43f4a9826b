"""Can the generator send the load? The Python open loop and hey, each from one CPU, at
twice web-single's capacity on the other CPU, side by side.

    python -m loadtests.bench.generator_check [--port 18212] [--seconds 10] [--factor 2]

Brings up web-single (its in-flight bound at 64, so the excess is refused at once and a
slow answer cannot hold a generator back), pins it to CPU 1 and this process to CPU 0
(as ``make overload`` does), measures the capacity with hey's 256 connections back to
back, then sends ``--factor`` times that for ``--seconds`` with each generator in turn,
256 connections each: :func:`loadtests.openloop.open_loop` (aiohttp, in this process) and
:func:`loadtests.hey.run`. Prints, per generator, what it sent against what was due and,
for the open loop, the share of requests it sent over 5 ms late. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from loadtests import hey
from loadtests.bench.overload import BODY, CONNECTIONS, Stack
from loadtests.measured import load_average
from loadtests.openloop import LoadError, open_loop

STACK_CORE, LOAD_CORE = 1, 0


def main(argv: list[str] | None = None) -> int:
    """Measure the capacity, then each generator at ``--factor`` times it; print a table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=18212)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--factor", type=float, default=2.0)
    args = parser.parse_args(argv)
    stack = Stack("web-single", args.port, purpose="generator-check")
    rows = []
    try:
        stack.up({"MAX_REQUESTS_IN_FLIGHT": "64", "OVERLOAD_DELAY_TARGET_MS": "0"})
        stack.pin(STACK_CORE)
        os.sched_setaffinity(0, {LOAD_CORE})
        url = f"http://127.0.0.1:{stack.published_port()}/predict"
        load_before = load_average()
        found = hey.run(url, BODY, connections=CONNECTIONS, seconds=args.seconds, core=LOAD_CORE)
        capacity = found.summary(args.seconds)["goodput_per_s"]
        rate = capacity * args.factor
        python = asyncio.run(open_loop(url, BODY, rate, args.seconds, connections=CONNECTIONS))
        with_hey = hey.run(
            url, BODY, connections=CONNECTIONS, seconds=args.seconds, rate=rate, core=LOAD_CORE
        )
        for name, tally in (
            ("Python open loop (aiohttp)", python),
            ("hey, 16 processes", with_hey),
        ):
            summary = tally.summary(args.seconds)
            late = f"{summary['late_share']:.0%}" if name.startswith("Python") else "-"
            rows.append(
                f"| {name} | {rate:.0f} | {summary['offered_per_s']:.0f} "
                f"| {summary['offered_per_s'] / capacity:.2f}x | {late} "
                f"| {', '.join(f'{s}: {n}' for s, n in summary['statuses'].items())} |"
            )
    except LoadError as exc:
        print(f"generator_check: {exc}", file=sys.stderr)
        return 2
    finally:
        stack.down()
    print(
        f"web-single (count 64) on CPU {STACK_CORE}, the generators on CPU {LOAD_CORE}; capacity"
        f" {capacity:.0f} req/s (hey, {CONNECTIONS} connections back to back, {args.seconds:g}"
        f" s); load average {load_before} before, {load_average()} after.\n"
    )
    print("| generator | due/s | sent/s | sent x capacity | sent > 5 ms late | statuses |")
    print("|---|---:|---:|---:|---:|---|")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
