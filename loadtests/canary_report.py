"""``make canary-report``: how the canary compares with the primary, from the api's /metrics.

    python -m loadtests.canary_report [--url http://127.0.0.1:8000]

Reads the running canary api's ``/metrics`` (the counts since it started) and prints, per
variant: the weight in force, its share of the requests the split gave out, the requests
it answered, its latency (p50 and p99, interpolated in the histogram's buckets as
Prometheus' ``histogram_quantile`` does), its failed calls, and the distribution of the
labels it answered; then the fallbacks (the canary's requests the primary answered).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from loadtests.shadow_report import histogram_quantile, report_main

__all__ = ["CanaryFigures", "main", "parse", "render"]

VARIANTS = ("primary", "canary")


@dataclass
class CanaryFigures:
    """What a canary api's metrics say, per variant."""

    weights: dict[str, float] = field(default_factory=dict)
    assigned: dict[str, float] = field(default_factory=dict)
    buckets: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    rows: dict[tuple[str, str], float] = field(default_factory=dict)  # (variant, label)
    errors: dict[str, float] = field(default_factory=dict)
    fallbacks: float = 0.0

    def share(self, variant: str) -> float | None:
        """Share of the requests the split gave ``variant``; None before any."""
        total = sum(self.assigned.values())
        return self.assigned.get(variant, 0.0) / total if total else None

    def answered(self, variant: str) -> float:
        """Requests ``variant`` answered (fallbacks are the primary's)."""
        buckets = self.buckets.get(variant, [])
        return buckets[-1][1] if buckets else 0.0

    def quantile_ms(self, variant: str, share: float) -> float | None:
        """``share`` quantile of ``variant``'s latency in ms; None without observations."""
        value = histogram_quantile(self.buckets.get(variant, []), share)
        return None if value is None else value * 1000

    def labels(self) -> list[str]:
        """Every label either variant answered, sorted."""
        return sorted({label for _, label in self.rows})

    def label_share(self, variant: str, label: str) -> float | None:
        """Share of ``variant``'s rows labelled ``label``; None when it answered none."""
        total = sum(n for (v, _), n in self.rows.items() if v == variant)
        return self.rows.get((variant, label), 0.0) / total if total else None


def parse(text: str) -> CanaryFigures:
    """The canary figures in a Prometheus text page."""
    figures = CanaryFigures()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels, value = sample.labels, sample.value
            variant = labels.get("variant", "")
            if sample.name == "mlsp_canary_weight":
                figures.weights[variant] = value
            elif sample.name == "mlsp_canary_assigned_total":
                figures.assigned[variant] = figures.assigned.get(variant, 0.0) + value
            elif sample.name == "mlsp_canary_latency_seconds_bucket":
                figures.buckets.setdefault(variant, []).append((float(labels["le"]), value))
            elif sample.name == "mlsp_canary_rows_total":
                key = (variant, labels["label"])
                figures.rows[key] = figures.rows.get(key, 0.0) + value
            elif sample.name == "mlsp_canary_errors_total":
                figures.errors[variant] = figures.errors.get(variant, 0.0) + value
            elif sample.name == "mlsp_canary_fallbacks_total":
                figures.fallbacks += value
    for buckets in figures.buckets.values():
        buckets.sort()
    return figures


def _ms(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f} ms"


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def render(figures: CanaryFigures) -> str:
    """The report as markdown: per variant, then labels, then fallbacks."""
    lines = [
        "| variant | weight | share of requests | requests | answered | p50 | p99 | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for variant in VARIANTS:
        weight = figures.weights.get(variant)
        lines.append(
            f"| {variant} | {'n/a' if weight is None else f'{weight:.0f}%'} | "
            f"{_percent(figures.share(variant))} | {figures.assigned.get(variant, 0):.0f} | "
            f"{figures.answered(variant):.0f} | {_ms(figures.quantile_ms(variant, 0.5))} | "
            f"{_ms(figures.quantile_ms(variant, 0.99))} | {figures.errors.get(variant, 0):.0f} |"
        )
    labels = figures.labels()
    lines += ["", "Labels answered (share of each variant's rows):", ""]
    if labels:
        lines.append("| variant | " + " | ".join(labels) + " |")
        lines.append("|---|" + "---:|" * len(labels))
        for variant in VARIANTS:
            shares = [_percent(figures.label_share(variant, label)) for label in labels]
            lines.append(f"| {variant} | " + " | ".join(shares) + " |")
    else:
        lines.append("(no row answered yet)")
    lines += [
        "",
        f"Fallbacks: {figures.fallbacks:.0f} of the canary's requests answered by the primary "
        "(the canary's call failed)",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Print the report of the canary api at ``--url``."""

    def report(text: str) -> str | None:
        figures = parse(text)
        return render(figures) if figures.weights else None

    return report_main(argv, "canary", report)


if __name__ == "__main__":
    raise SystemExit(main())
