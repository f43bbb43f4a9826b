"""Load-test settings, read from environment variables in this one place.

=============  =======  ====================================================
variable       default  meaning
=============  =======  ====================================================
PATTERN        (none)   which pattern's user class the locustfile runs
BATCH_SIZE     1        instances per request
SEED           42       base seed; each simulated user derives its own
REPEAT_SHARE   0        share (0..1) of requests reusing a body from a small pool
WAIT_SECONDS   0        think time between a user's requests (0: none)
POLL_SECONDS   0.02     async patterns: pause between two polls of one job
POLL_WAIT_S    2        async: each poll asks the api to wait up to this long
                        for the job to end (``?wait_s=``, a long poll), so a
                        job usually costs a submit and one poll; 0: plain polls
JOB_DEADLINE   30       async patterns: seconds a job may take before it
                        counts as a failure
ITEMS          1797     data-cache: ids 0..ITEMS-1 are requested
ZIPF_S         1.0      data-cache: Zipf exponent of the id popularity (rank k
                        drawn with weight 1/k^s; 0 is uniform)
SAMPLES_DIR    (none)   image patterns: the folder of sample images to send
                        (default: the pattern's samples, see the scenario)
=============  =======  ====================================================

The target URL is Locust's own ``--host`` / ``LOCUST_HOST``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["ConfigError", "Settings", "load_settings"]

_T = TypeVar("_T", int, float)


class ConfigError(ValueError):
    """An environment variable holds a value the harness cannot use."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Typed load-test settings (see the module docstring for the variables)."""

    pattern: str = ""
    batch_size: int = 1
    seed: int = 42
    repeat_share: float = 0.0
    wait_seconds: float = 0.0
    poll_seconds: float = 0.02
    poll_wait_s: float = 2.0
    job_deadline: float = 30.0
    items: int = 1797
    zipf_s: float = 1.0
    samples_dir: str = ""


def _number(
    environ: Mapping[str, str], name: str, kind: Callable[[str], _T], default: _T, low: _T
) -> _T:
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a valid {kind.__name__}") from None
    if not math.isfinite(value) or value < low:
        raise ConfigError(f"{name}={raw!r} must be at least {low}")
    return value


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read and validate the settings from ``environ`` (default: ``os.environ``)."""
    env = os.environ if environ is None else environ
    repeat_share = _number(env, "REPEAT_SHARE", float, 0.0, 0.0)
    if repeat_share > 1.0:
        raise ConfigError(f"REPEAT_SHARE={repeat_share} must be between 0 and 1")
    return Settings(
        pattern=env.get("PATTERN", "").strip(),
        batch_size=_number(env, "BATCH_SIZE", int, 1, 1),
        seed=_number(env, "SEED", int, 42, 0),
        repeat_share=repeat_share,
        wait_seconds=_number(env, "WAIT_SECONDS", float, 0.0, 0.0),
        poll_seconds=_number(env, "POLL_SECONDS", float, 0.02, 0.0),
        poll_wait_s=_number(env, "POLL_WAIT_S", float, 2.0, 0.0),
        job_deadline=_number(env, "JOB_DEADLINE", float, 30.0, 0.1),
        items=_number(env, "ITEMS", int, 1797, 1),
        zipf_s=_number(env, "ZIPF_S", float, 1.0, 0.0),
        samples_dir=env.get("SAMPLES_DIR", "").strip(),
    )
