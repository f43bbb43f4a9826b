"""Run wrk against one URL and keep its figures: ``python -m loadtests.bench.wrk NAME URL OUT``.

wrk (C, one thread, 16 connections by default) is used rather than Locust for
the ratios: it needs a fraction of a core where Locust needs one, so on two
cores the server, not the load generator, is what saturates.
"""

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

LUA = """
wrk.method = "POST"
wrk.body = '{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
wrk.headers["Content-Type"] = "application/json"
"""
# Unique rows per request: every request a cache miss (for the cache-value ratio).
LUA_UNIQUE = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
counter = 0
request = function()
  counter = counter + 1
  local body = string.format('{"instances": [[%d.%d, 3.5, 1.4, 0.2]]}', 4 + counter % 4, counter)
  return wrk.format(nil, nil, nil, body)
end
"""
_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


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


def run(url: str, seconds: int, connections: int, unique: bool) -> dict[str, float]:
    """Warm up for 2 s, then measure for ``seconds``."""
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(LUA_UNIQUE if unique else LUA)
    base = ["wrk", "-t1", f"-c{connections}", "-s", script.name, "--latency"]
    subprocess.run([*base, "-d2s", url], check=True, capture_output=True)
    done = subprocess.run([*base, f"-d{seconds}s", url], check=True, capture_output=True, text=True)
    return parse(done.stdout)


def main() -> int:
    """Command line: measure, print one line, write the figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name")
    parser.add_argument("url")
    parser.add_argument("out", type=Path)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--unique", action="store_true", help="a different row every request")
    args = parser.parse_args()
    figures = run(args.url, args.seconds, args.connections, args.unique)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"name": args.name, **figures}))
    print(
        f"{args.name:>24}: {figures['rps']:8.0f} req/s  p50 {figures['p50_ms']:.2f} ms  "
        f"p99 {figures['p99_ms']:.2f} ms  non-2xx {figures['errors']:.0f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
