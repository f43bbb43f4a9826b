"""Locust entry point: runs the user class of the pattern named by ``$PATTERN``.

From the repository root (or from /app when ``loadtests/`` is mounted there)::

    PATTERN=web-single locust -f loadtests/locustfile.py --headless \\
        -H http://127.0.0.1:8000 -u 16 -r 16 -t 60s --only-summary \\
        --csv loadtests/results/web-single --html loadtests/results/web-single.html
    python -m loadtests.report loadtests/results/web-single

Other settings: see ``loadtests/config.py``. Only the selected class is put in
this module's namespace, because Locust runs every User class it finds here.
With ``API_KEYS`` set (the api's keys), every request sends the first one.
"""

import os
import sys
from pathlib import Path

# Locust puts only this file's folder on sys.path; the package lives one level up.
_PACKAGE_PARENT = str(Path(__file__).resolve().parent.parent)
if _PACKAGE_PARENT not in sys.path:
    sys.path.insert(0, _PACKAGE_PARENT)

from loadtests import final_stats, progress  # noqa: E402
from loadtests.config import ConfigError, load_settings  # noqa: E402
from loadtests.scenarios import UnknownPatternError, load_user_class  # noqa: E402


def _expose_selected_user_class() -> None:
    try:
        user_class = load_user_class(load_settings().pattern)
    except (ConfigError, UnknownPatternError) as exc:
        raise SystemExit(f"loadtests: {exc}") from None
    # The harness runs without shared/ (a copy of loadtests/ suffices): the first key, inline.
    key = os.environ.get("API_KEYS", "").split(",")[0].strip()
    if key:
        authorization = {"Authorization": f"Bearer {key}"}
        user_class.default_headers = {**(user_class.default_headers or {}), **authorization}
    globals()[user_class.__name__] = user_class


_expose_selected_user_class()
final_stats.install()
progress.install()
