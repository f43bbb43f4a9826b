"""Run wrk against one or more targets and keep their figures.

    python -m loadtests.bench.wrk OUT_DIR NAME=URL[,URL...] [NAME=URL ...] [--rounds 3]
        [--seconds 10] [--connections 16] [--one-connection NAME] [--unique NAME]
        [--body NAME=JSON]

wrk (C, one thread, 16 connections by default) is used rather than Locust for
the ratios: it needs a fraction of a core where Locust needs one, so on two
cores the server, not the load generator, is what saturates.

The targets are measured in turns, round after round (A B C, A B C, ...), and
each keeps the median of its rounds: on a shared machine a target's rate can
move by a third from one minute to the next, and a ratio of two targets
measured in the same rounds moves much less than either of them.

A target of several URLs (the replicas of one tier, each by its own address)
is loaded through all of them at once, the connections split evenly, one wrk
each: its rate is their sum, its percentiles the highest of theirs.
"""

import argparse
import itertools
import json
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BODY = '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
LUA = """
wrk.method = "POST"
wrk.body = '{body}'
wrk.headers["Content-Type"] = "application/json"
"""
# Unique rows per request: every request a cache miss (for the cache-value ratio).
# The first feature counts the requests (distinct in float32 up to 2^24), the second
# is the run's number, so no two runs of one bench send the same row.
LUA_UNIQUE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"instances": [[%d.5, {run}.5, 1.4, 0.2]]}', counter)
  return wrk.format(nil, nil, nil, body)
end
"""
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}
FIGURES = ("rps", "p50_ms", "p90_ms", "p99_ms", "errors")
_RUN_NUMBERS = itertools.count(1)  # numbers the wrk runs of this process (for unique rows)


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * _UNITS[unit]


def parse(output: str) -> dict[str, float]:
    """Requests/s and p50/p90/p99 (ms) from ``wrk --latency`` output."""
    figures = {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))}  # type: ignore[union-attr]
    for percentile in ("50", "90", "99"):
        match = re.search(rf"^\s+{percentile}%\s+(\S+)", output, re.MULTILINE)
        figures[f"p{percentile}_ms"] = _ms(match.group(1))  # type: ignore[union-attr]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    figures["errors"] = float(errors.group(1)) if errors else 0.0
    return figures


def _script(unique: bool, body: str) -> str:
    """A wrk Lua script file for one run."""
    run_number = next(_RUN_NUMBERS)
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(
            LUA_UNIQUE.replace("{run}", str(run_number)) if unique else LUA.replace("{body}", body)
        )
    return script.name


def combined(parts: list[dict[str, float]]) -> dict[str, float]:
    """The figures of one load spread over several URLs: rates and errors
    summed, each percentile the highest of the parts'."""
    return {
        key: (sum if key in ("rps", "errors") else max)(part[key] for part in parts)
        for key in FIGURES
    }


def run(
    urls: list[str], seconds: int, connections: int, unique: bool, body: str = BODY
) -> dict[str, float]:
    """Warm up for 2 s, then measure for ``seconds``, through all ``urls`` at once."""
    if connections < len(urls):
        raise ValueError(f"{connections} connections cannot load {len(urls)} URLs")
    for duration in (2, seconds):  # the first run warms up
        wrks = [
            subprocess.Popen(
                [
                    "wrk", "-t1", f"-c{share}", "--latency", "-s", _script(unique, body),
                    f"-d{duration}s", url,
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            for url, share in zip(urls, connection_shares(connections, len(urls)), strict=True)
        ]  # fmt: skip
        outputs = [wrk.communicate()[0] for wrk in wrks]
        for wrk, url in zip(wrks, urls, strict=True):
            if wrk.returncode:
                raise subprocess.CalledProcessError(wrk.returncode, f"wrk {url}")
    return combined([parse(output) for output in outputs])


def connection_shares(connections: int, parts: int) -> list[int]:
    """``connections`` split as evenly as they go into ``parts``."""
    return [connections // parts + (i < connections % parts) for i in range(parts)]


def medians(rounds: list[dict[str, float]]) -> dict[str, float]:
    """Each figure's median over the rounds (errors: their sum)."""
    figures = {
        key: statistics.median([r[key] for r in rounds]) for key in FIGURES if key != "errors"
    }
    figures["errors"] = sum(r["errors"] for r in rounds)
    return figures


def main() -> int:
    """Command line: measure the targets in turns; one line per measurement, one JSON each."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", type=Path, help="folder for one NAME.json per target")
    parser.add_argument("targets", nargs="+", metavar="NAME=URL")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--one-connection",
        action="append",
        default=[],
        metavar="NAME",
        help="measure this target with one connection (no queueing)",
    )
    parser.add_argument(
        "--unique",
        action="append",
        default=[],
        metavar="NAME",
        help="a different row every request for this target",
    )
    parser.add_argument(
        "--body",
        action="append",
        default=[],
        metavar="NAME=JSON",
        help="the request body for this target (default: one iris row for /predict)",
    )
    args = parser.parse_args()  # fmt: skip
    targets = {name: urls.split(",") for name, urls in (t.split("=", 1) for t in args.targets)}
    bodies = dict(body.split("=", 1) for body in args.body)
    measured: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
    for round_ in range(1, args.rounds + 1):
        for name, urls in targets.items():
            connections = 1 if name in args.one_connection else args.connections
            figures = run(
                urls, args.seconds, connections, name in args.unique, bodies.get(name, BODY)
            )
            measured[name].append(figures)
            print(
                f"round {round_} {name:>30}: {figures['rps']:8.0f} req/s  "
                f"p50 {figures['p50_ms']:.2f} ms  p99 {figures['p99_ms']:.2f} ms  "
                f"non-2xx {figures['errors']:.0f}",
                flush=True,
            )
    args.out.mkdir(parents=True, exist_ok=True)
    for name, rounds in measured.items():
        record = {"name": name, **medians(rounds), "rounds": rounds}
        (args.out / f"{name}.json").write_text(json.dumps(record))
    return 0


if __name__ == "__main__":
    sys.exit(main())
