"""One Locust user class per pattern, found by the pattern's name.

Each pattern's scenario is the module named after it (``prep-pred``: ``prep_pred.py``,
``async``: ``async_.py``, the keyword's usual spelling), except the patterns that answer
``POST /predict`` at once and need nothing more (web-single, sync, serial): they share
``predict.py`` (which canary's extends).

Adding a pattern: write ``scenarios/<name>.py`` with a ``FastHttpUser``
subclass (see ``predict.py``; the helpers in ``common.py`` check answers,
derive per-user seeds and report extra timings such as an async job's
end-to-end time), then add one line to :data:`SCENARIOS`.

The registry holds import paths, not classes, so that only the selected
scenario module (and Locust with it) gets imported.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "ANSWER_AT_ONCE",
    "SCENARIOS",
    "UnknownPatternError",
    "load_user_class",
    "user_class_path",
]

#: The patterns whose scenario is the shared :mod:`loadtests.scenarios.predict`.
ANSWER_AT_ONCE = ("web-single", "sync", "serial")

#: pattern name (as users type it) -> "module:UserClass"
SCENARIOS: dict[str, str] = {
    "web-single": "loadtests.scenarios.predict:PredictUser",
    "sync": "loadtests.scenarios.predict:PredictUser",
    "async": "loadtests.scenarios.async_:AsyncUser",
    "serial": "loadtests.scenarios.predict:PredictUser",
    "parallel": "loadtests.scenarios.parallel:ParallelUser",
    "batch": "loadtests.scenarios.batch:BatchUser",
    "prediction-cache": "loadtests.scenarios.prediction_cache:CachedPredictUser",
    "data-cache": "loadtests.scenarios.data_cache:ItemIdUser",
    "prep-pred": "loadtests.scenarios.prep_pred:ImageUser",
    "shadow": "loadtests.scenarios.shadow:ShadowUser",
    "canary": "loadtests.scenarios.canary:CanaryUser",
}


class UnknownPatternError(LookupError):
    """No scenario is registered under the requested pattern name."""

    def __init__(self, pattern: str) -> None:
        known = ", ".join(sorted(SCENARIOS))
        shown = repr(pattern) if pattern else "(not set)"
        super().__init__(f"unknown PATTERN {shown}; known patterns: {known}")
        self.pattern = pattern


def user_class_path(pattern: str) -> tuple[str, str]:
    """The ``(module, class name)`` registered for ``pattern``."""
    try:
        module, _, name = SCENARIOS[pattern].partition(":")
    except KeyError:
        raise UnknownPatternError(pattern) from None
    return module, name


def load_user_class(pattern: str) -> type[Any]:
    """Import and return the Locust user class registered for ``pattern``."""
    module, name = user_class_path(pattern)
    return getattr(importlib.import_module(module), name)
