"""``make shadow-report``: how the candidate compares with the primary, from the api's /metrics.

    python -m loadtests.shadow_report [--url http://127.0.0.1:8000]

Reads the running shadow api's ``/metrics`` (the counts since it started) and prints the
agreement rate, the confusion table of primary against candidate labels (rows: the
primary's label; columns: the candidate's), both models' latency (p50 and p99,
interpolated in the histogram's buckets as Prometheus' ``histogram_quantile`` does) and
what became of the mirrored calls and the rows they carried (answered, failed, timed out,
dropped over the bound; a call carries the rows mirrored within one ``SHADOW_WINDOW_MS``).
"""

from __future__ import annotations

import argparse
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

__all__ = ["ShadowFigures", "histogram_quantile", "main", "parse", "render", "report_main"]

MODELS = ("primary", "candidate")


@dataclass
class ShadowFigures:
    """What a shadow api's metrics say: rows by both labels, latency buckets, mirror outcomes."""

    rows: dict[tuple[str, str], float] = field(default_factory=dict)
    buckets: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    mirrors: dict[str, float] = field(default_factory=dict)
    mirrored_rows: dict[str, float] = field(default_factory=dict)

    @property
    def compared(self) -> float:
        """Rows both models answered."""
        return sum(self.rows.values())

    @property
    def agreement(self) -> float | None:
        """Share of compared rows with the same label; None before any."""
        if not self.compared:
            return None
        return sum(n for (p, c), n in self.rows.items() if p == c) / self.compared

    def labels(self) -> list[str]:
        """Every label either model gave, sorted."""
        return sorted({label for pair in self.rows for label in pair})

    def quantile_ms(self, model: str, share: float) -> float | None:
        """``share`` quantile of ``model``'s latency in ms; None without observations."""
        value = histogram_quantile(self.buckets.get(model, []), share)
        return None if value is None else value * 1000

    def requests(self, model: str) -> float:
        """Requests answered by ``model`` (the histogram's count)."""
        buckets = self.buckets.get(model, [])
        return buckets[-1][1] if buckets else 0.0


def histogram_quantile(buckets: Sequence[tuple[float, float]], share: float) -> float | None:
    """The ``share`` quantile of cumulative ``(upper bound, count)`` buckets, interpolated
    linearly within its bucket (Prometheus' rule; the +Inf bucket gives the last finite bound)."""
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = share * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower_bound
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (
                count - lower_count
            )
        lower_bound, lower_count = bound, count
    return lower_bound


def parse(text: str) -> ShadowFigures:
    """The shadow figures in a Prometheus text page."""
    figures = ShadowFigures()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "mlsp_shadow_rows_total":
                pair = (labels["primary_label"], labels["candidate_label"])
                figures.rows[pair] = figures.rows.get(pair, 0.0) + sample.value
            elif sample.name == "mlsp_shadow_latency_seconds_bucket":
                bound = float(labels["le"])
                figures.buckets.setdefault(labels["model"], []).append((bound, sample.value))
            elif sample.name == "mlsp_mirror_calls_total" and labels.get("mirror") == "candidate":
                figures.mirrors[labels["outcome"]] = sample.value
            elif sample.name == "mlsp_mirror_rows_total" and labels.get("mirror") == "candidate":
                figures.mirrored_rows[labels["outcome"]] = sample.value
    for buckets in figures.buckets.values():
        buckets.sort()
    return figures


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _outcomes(counts: dict[str, float]) -> str:
    return ", ".join(
        f"{outcome} {counts.get(outcome, 0):.0f}"
        for outcome in ("ok", "failed", "timeout", "dropped")
    )


def render(figures: ShadowFigures) -> str:
    """The report as markdown: agreement, confusion table, latencies, mirror outcomes."""
    agreement = figures.agreement
    lines = [
        f"Agreement: {'n/a' if agreement is None else f'{agreement:.1%}'} of "
        f"{figures.compared:.0f} rows both models answered",
        "",
        "Confusion (rows: primary's label; columns: candidate's):",
        "",
    ]
    labels = figures.labels()
    if labels:
        lines.append("| primary \\ candidate | " + " | ".join(labels) + " |")
        lines.append("|---|" + "---:|" * len(labels))
        for primary in labels:
            counts = [f"{figures.rows.get((primary, c), 0):.0f}" for c in labels]
            lines.append(f"| {primary} | " + " | ".join(counts) + " |")
    else:
        lines.append("(no row compared yet)")
    lines += ["", "| model | requests | p50 | p99 |", "|---|---:|---:|---:|"]
    for model in MODELS:
        lines.append(
            f"| {model} | {figures.requests(model):.0f} | "
            f"{_ms(figures.quantile_ms(model, 0.5))} | {_ms(figures.quantile_ms(model, 0.99))} |"
        )
    lines += ["", f"Mirrored calls: {_outcomes(figures.mirrors)}"]
    lines += [f"Mirrored rows: {_outcomes(figures.mirrored_rows)}"]
    return "\n".join(lines) + "\n"


def read_metrics(url: str, timeout_s: float = 5.0) -> str:
    """The ``/metrics`` page of the api at ``url``."""
    with urllib.request.urlopen(f"{url.rstrip('/')}/metrics", timeout=timeout_s) as answer:
        return answer.read().decode()


def report_main(
    argv: Sequence[str] | None, pattern: str, report: Callable[[str], str | None]
) -> int:
    """A ``make <pattern>-report`` command: ``report`` turns the ``/metrics`` page of the
    api at ``--url`` into the report (None: the page is not that pattern's); printed."""
    parser = argparse.ArgumentParser(description=f"The {pattern} report, from its api's /metrics.")
    parser.add_argument("--url", default="http://127.0.0.1:8000", help=f"the {pattern} api")
    args = parser.parse_args(argv)
    try:
        text = read_metrics(args.url)
    except (urllib.error.URLError, OSError) as exc:
        print(f"cannot read {args.url}/metrics ({exc}); is the {pattern} stack up? "
              f"make up PATTERN={pattern}", file=sys.stderr)  # fmt: skip
        return 2
    page = report(text)
    if page is None:
        print(f"{args.url} is not a {pattern} api (no mlsp_{pattern}_* metrics)", file=sys.stderr)
        return 2
    print(page, end="")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report of the shadow api at ``--url``."""

    def report(text: str) -> str | None:
        figures = parse(text)
        return render(figures) if figures.buckets else None

    return report_main(argv, "shadow", report)


if __name__ == "__main__":
    raise SystemExit(main())
