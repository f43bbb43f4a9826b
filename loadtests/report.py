"""Summarise a Locust run from the CSV that ``--csv <prefix>`` writes.

    python -m loadtests.report <prefix> [--max-failure-pct X]

Reads ``<prefix>_stats.csv``, prints one line per request name plus the
Aggregated row (requests, failures, failure %, req/s, p50/p95/p99/max in ms)
and writes the same table to ``<prefix>_summary.md`` and ``<prefix>_summary.json``.
For the cache patterns, whose scenarios file each request under its ``X-Cache``
answer (``POST /predict [hit]``), a last line gives the hit ratio.
Exits 1 when ``--max-failure-pct`` is given and the aggregated failure share
exceeds it (or nothing was requested), 2 when the CSV is missing or malformed.
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = [
    "AGGREGATED",
    "REQUIRED_COLUMNS",
    "ReportError",
    "StatsRow",
    "aggregated",
    "cache_line",
    "cache_results",
    "format_markdown",
    "format_table",
    "is_cache_split",
    "main",
    "read_stats",
]

#: Name of the all-requests row in Locust's stats CSV.
AGGREGATED = "Aggregated"
#: Columns of Locust's ``_stats.csv`` (2.x) that the report uses.
REQUIRED_COLUMNS = (
    "Type",
    "Name",
    "Request Count",
    "Failure Count",
    "Requests/s",
    "50%",
    "95%",
    "99%",
    "Max Response Time",
)
_HEADERS = (
    "type",
    "name",
    "requests",
    "failures",
    "fail %",
    "req/s",
    "p50 (ms)",
    "p95 (ms)",
    "p99 (ms)",
    "max (ms)",
)


class ReportError(Exception):
    """The stats CSV is missing or not in Locust's format."""


@dataclass(frozen=True, slots=True)
class StatsRow:
    """One row of the stats CSV; times in ms, ``None`` where Locust wrote N/A."""

    type: str
    name: str
    requests: int
    failures: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @property
    def failure_pct(self) -> float:
        """Failures as a percentage of requests (0 when there were none)."""
        return 100.0 * self.failures / self.requests if self.requests else 0.0

    def as_dict(self) -> dict[str, object]:
        """The row as JSON-ready data, ``failure_pct`` included."""
        return {**asdict(self), "failure_pct": round(self.failure_pct, 3)}

    def cells(self) -> tuple[str, ...]:
        """The row formatted for the printed and markdown tables."""
        return (
            self.type,
            self.name,
            str(self.requests),
            str(self.failures),
            f"{self.failure_pct:.2f}",
            f"{self.rps:.1f}",
            *(_ms(value) for value in (self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms)),
        )


def _ms(value: float | None) -> str:
    return "N/A" if value is None else f"{value:.0f}"


def _optional(raw: str, digits: int = 1) -> float | None:
    return None if raw.strip() in ("", "N/A") else round(float(raw), digits)


def read_stats(path: str | Path) -> list[StatsRow]:
    """Parse Locust's ``_stats.csv`` at ``path``."""
    path = Path(path)
    try:
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or ())]
            if missing:
                raise ReportError(f"{path}: not a Locust stats CSV (missing {', '.join(missing)})")
            return [
                StatsRow(
                    type=row["Type"],
                    name=row["Name"],
                    requests=int(row["Request Count"]),
                    failures=int(row["Failure Count"]),
                    rps=round(float(row["Requests/s"]), 2),
                    p50_ms=_optional(row["50%"]),
                    p95_ms=_optional(row["95%"]),
                    p99_ms=_optional(row["99%"]),
                    max_ms=_optional(row["Max Response Time"], digits=2),
                )
                for row in reader
            ]
    except OSError as exc:
        raise ReportError(f"cannot read {path}: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ReportError(f"{path}: unexpected value ({exc})") from None


def aggregated(rows: Sequence[StatsRow]) -> StatsRow | None:
    """The Aggregated row, if the CSV has one."""
    return next((row for row in rows if row.name == AGGREGATED and not row.type), None)


#: The X-Cache answers of the cache patterns (shared/stores/cache.py).
CACHE_ANSWERS = ("hit", "miss", "coalesced", "bypass")
_ANSWER = "|".join(CACHE_ANSWERS)
#: A request name ending in its X-Cache answer(s): ``POST /predict [hit]``, ``[hit, miss]``.
_CACHE_ANSWER = re.compile(rf"\[((?:{_ANSWER})(?:, (?:{_ANSWER}))*)\]$")


def is_cache_split(name: str) -> bool:
    """True for a request name that ends in its X-Cache answer(s), e.g. ``POST /predict [hit]``."""
    return _CACHE_ANSWER.search(name) is not None


def cache_results(rows: Sequence[StatsRow]) -> dict[str, int]:
    """Items per X-Cache answer (hit, miss, ...) over the requests filed by it; {} if none are.

    A request of several items is filed under one answer per item (``[hit, miss]``).
    """
    counts: dict[str, int] = {}
    for row in rows:
        found = _CACHE_ANSWER.search(row.name) if row.name != AGGREGATED else None
        for result in found.group(1).split(", ") if found else ():
            counts[result] = counts.get(result, 0) + row.requests
    return counts


def cache_line(counts: dict[str, int]) -> str:
    """``cache: 86.1 % hits (860 of 1000 items; miss 130, coalesced 10)``."""
    total = sum(counts.values())
    hits = counts.get("hit", 0)
    others = ", ".join(f"{name} {n}" for name, n in sorted(counts.items()) if name != "hit")
    ratio = 100.0 * hits / total if total else 0.0
    return f"cache: {ratio:.1f} % hits ({hits} of {total} items" + (
        f"; {others})" if others else ")"
    )


def format_table(rows: Sequence[StatsRow]) -> str:
    """A plain-text table aligned for a terminal (times in ms)."""
    table = [_HEADERS, *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in table) for i in range(len(_HEADERS))]
    lines = [
        "  ".join(
            cell.ljust(width) if i < 2 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in table
    ]
    return "\n".join(lines) + "\n"


def format_markdown(rows: Sequence[StatsRow]) -> str:
    """A GitHub-flavoured markdown table (times in ms)."""
    lines = [
        "| " + " | ".join(_HEADERS) + " |",
        "|" + "|".join(["---"] * 2 + ["---:"] * (len(_HEADERS) - 2)) + "|",
    ]
    lines += ["| " + " | ".join(row.cells()) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.report", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("prefix", help="the prefix given to locust --csv")
    parser.add_argument(
        "--max-failure-pct",
        type=float,
        metavar="X",
        help="exit 1 if more than X%% of all requests failed (or none were made)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    args = _parse_args(argv)
    source = Path(f"{args.prefix}_stats.csv")
    try:
        rows = read_stats(source)
    except ReportError as exc:
        print(f"report: {exc}", file=sys.stderr)
        return 2
    print(format_table(rows), end="")
    markdown = format_markdown(rows)
    summary: dict[str, object] = {"source": str(source), "rows": [row.as_dict() for row in rows]}
    counts = cache_results(rows)
    if counts:
        line = cache_line(counts)
        print(line)
        markdown += f"\n{line}\n"
        hits = counts.get("hit", 0)
        summary["cache"] = {"items": counts, "hit_ratio": round(hits / sum(counts.values()), 4)}
    Path(f"{args.prefix}_summary.md").write_text(markdown)
    Path(f"{args.prefix}_summary.json").write_text(json.dumps(summary, indent=2) + "\n")

    if args.max_failure_pct is None:
        return 0
    total = aggregated(rows)
    if total is None or total.requests == 0:
        print("report: no requests were recorded", file=sys.stderr)
        return 1
    if total.failure_pct > args.max_failure_pct:
        print(
            f"report: {total.failure_pct:.2f}% of {total.requests} requests failed"
            f" (allowed: {args.max_failure_pct}%)",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
