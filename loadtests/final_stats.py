"""Make ``<prefix>_stats.csv`` hold the final numbers of a run.

Locust rewrites ``--csv``'s ``_stats.csv`` once a second and does not write it
again at shutdown, so the file misses up to the last second of a run (a large
share of a short smoke run). On quit this writes the final stats, in Locust's
own format, to a new file and renames it over the old one (Locust's still-open
handle keeps pointing at the replaced file).
"""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path

from locust import events
from locust.env import Environment
from locust.event import Events
from locust.runners import WorkerRunner
from locust.stats import PERCENTILES_TO_REPORT, StatsCSV

__all__ = ["install", "write_final_stats"]

logger = logging.getLogger(__name__)


def write_final_stats(environment: Environment) -> Path | None:
    """Write the current stats to ``<--csv prefix>_stats.csv``; the path, or None if no --csv."""
    prefix = getattr(environment.parsed_options, "csv_prefix", None)
    if not prefix or isinstance(environment.runner, WorkerRunner):
        return None
    target = Path(f"{prefix}_stats.csv")
    partial = target.with_name(f".{target.name}.partial")
    with partial.open("w", newline="") as file:
        StatsCSV(environment, PERCENTILES_TO_REPORT).requests_csv(csv.writer(file))
    os.replace(partial, target)
    return target


def install(hooks: Events = events) -> None:
    """Register the listeners that rewrite the stats CSV when Locust quits."""
    environments: list[Environment] = []

    @hooks.init.add_listener
    def _remember(environment: Environment, **_: object) -> None:
        environments.append(environment)

    @hooks.quit.add_listener
    def _write(**_: object) -> None:
        for environment in environments:
            try:
                write_final_stats(environment)
            except OSError as exc:
                logger.warning("could not write the final stats CSV: %s", exc)
