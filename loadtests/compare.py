"""One report for a ``make compare`` run: a markdown table and a chart.

    python -m loadtests.compare RESULTS_DIR PATTERN [PATTERN ...]

Reads ``RESULTS_DIR/<pattern>_summary.json`` (written by ``loadtests.report``
after each pattern's load run) and writes ``RESULTS_DIR/comparison.md`` and
``RESULTS_DIR/comparison.png``. A pattern without a summary (it failed to come
up, or its run crashed; ``<pattern>.failed`` may say why) gets a row saying
so: one failed pattern never sinks the whole comparison.

For asynchronous patterns the client-visible latency is the submit; the time
until the result is ready is a separate Locust entry of type ``E2E``, shown in
its own columns.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loadtests import breakdown, report

__all__ = ["PatternResult", "load_result", "machine_description", "main", "markdown"]

E2E_TYPE = "E2E"


@dataclass(frozen=True)
class PatternResult:
    """What one pattern's run gave, or why it gave nothing."""

    pattern: str
    rps: float | None = None
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None
    failure_pct: float | None = None
    e2e_p50: float | None = None
    e2e_p99: float | None = None
    error: str | None = None


def load_result(results: Path, pattern: str) -> PatternResult:
    """The result of ``pattern`` from its summary JSON, or an error row."""
    summary = results / f"{pattern}_summary.json"
    if not summary.is_file():
        failed = results / f"{pattern}.failed"
        reason = failed.read_text().strip() if failed.is_file() else "no summary written"
        return PatternResult(pattern, error=reason or "failed")
    rows = json.loads(summary.read_text())["rows"]
    requests = [r for r in rows if r["type"] not in ("", E2E_TYPE) and r["name"] != "Aggregated"]
    e2e = next((r for r in rows if r["type"] == E2E_TYPE), None)
    if not requests:
        return PatternResult(pattern, error="no requests recorded")
    total_requests = sum(r["requests"] for r in requests)
    # The busiest request entry is the one users wait on (the predict or the submit); a cache
    # pattern's requests are split by X-Cache answer, and all of them together are what users see.
    main_row = max(requests, key=lambda r: r["requests"])
    total = next((r for r in rows if r["name"] == "Aggregated"), None)
    if total is not None and all(report.is_cache_split(r["name"]) for r in requests):
        main_row = total
    return PatternResult(
        pattern,
        rps=sum(r["rps"] for r in requests),
        p50=main_row["p50_ms"],
        p95=main_row["p95_ms"],
        p99=main_row["p99_ms"],
        failure_pct=100 * sum(r["failures"] for r in requests) / max(total_requests, 1),
        e2e_p50=e2e["p50_ms"] if e2e else None,
        e2e_p99=e2e["p99_ms"] if e2e else None,
    )


def machine_description() -> str:
    """Cores, processor, memory and time of the run, for the report's heading."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = next(
            int(line.split()[1])
            for line in Path("/proc/meminfo").read_text().splitlines()
            if line.startswith("MemTotal")
        )
        memory = f", {mem_kb / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        memory = ""
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"{os.cpu_count()} cores ({cpu}){memory}, {platform.system()}; {when}"


def _cell(value: float | None, digits: int = 0) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def markdown(results: Sequence[PatternResult], settings: str) -> str:
    """The comparison table in markdown, with the run's settings and machine."""
    lines = [
        f"Machine: {machine_description()}  ",
        f"Load: {settings}",
        "",
        "| pattern | requests/s | p50 (ms) | p95 (ms) | p99 (ms) | failures | "
        "completion p50 (ms) | completion p99 (ms) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        if r.error is not None:
            lines.append(f"| {r.pattern} | failed: {r.error} | | | | | | |")
            continue
        lines.append(
            f"| {r.pattern} | {_cell(r.rps, 1)} | {_cell(r.p50)} | {_cell(r.p95)} | "
            f"{_cell(r.p99)} | {_cell(r.failure_pct, 2)}% | {_cell(r.e2e_p50)} | "
            f"{_cell(r.e2e_p99)} |"
        )
    return "\n".join(lines) + "\n"


def chart(results: Sequence[PatternResult], path: Path, title: str) -> None:
    """Latency percentiles and throughput per pattern, side by side, as a PNG."""
    import matplotlib  # noqa: PLC0415 - only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    ok = [r for r in results if r.error is None]
    names = [r.pattern for r in ok]
    x = range(len(ok))
    fig, (latency, throughput) = plt.subplots(1, 2, figsize=(12, 4.5))
    width = 0.2
    series = [
        ("p50", [r.p50 for r in ok]),
        ("p95", [r.p95 for r in ok]),
        ("p99", [r.p99 for r in ok]),
        ("completion p50", [r.e2e_p50 or 0 for r in ok]),
    ]
    for i, (label, values) in enumerate(series):
        if any(values):
            latency.bar([k + (i - 1.5) * width for k in x], values, width, label=label)
    latency.set_xticks(list(x), names, rotation=20, ha="right")
    latency.set_ylabel("ms")
    latency.set_title("latency (lower is better)")
    latency.legend()
    throughput.bar(list(x), [r.rps for r in ok], color="tab:green")
    throughput.set_xticks(list(x), names, rotation=20, ha="right")
    throughput.set_ylabel("requests/s")
    throughput.set_title("throughput (higher is better)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_breakdowns(results: Path, patterns: Sequence[str]) -> list[breakdown.Breakdown]:
    """The per-hop breakdowns written by runs with OBSERVE=1, in the patterns' order."""
    found = []
    for pattern in patterns:
        path = results / f"{pattern}_breakdown.json"
        if path.is_file():
            (data,) = json.loads(path.read_text())
            found.append(breakdown.Breakdown(**{**data, "pattern": pattern}))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: write comparison.md and comparison.png; print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("patterns", nargs="+")
    parser.add_argument("--settings", default="", help="the load settings, for the report")
    args = parser.parse_args(argv)
    results = [load_result(args.results, pattern) for pattern in args.patterns]
    table = markdown(results, args.settings)
    hops = load_breakdowns(args.results, args.patterns)
    if hops:  # OBSERVE=1: where each pattern's time goes
        breakdown.chart(hops, args.results / "comparison_breakdown.png")
        table += "\n### Where the time goes (mean per request, from Prometheus)\n\n"
        table += breakdown.markdown(hops)
    (args.results / "comparison.md").write_text(table)
    chart(results, args.results / "comparison.png", f"ML serving patterns: {args.settings}")
    print(table)
    return 0 if all(r.error is None for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
