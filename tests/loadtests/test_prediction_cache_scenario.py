"""The prediction-cache scenario: names each request by its X-Cache answer.

Imported in a child process: importing Locust patches the interpreter with gevent.
"""

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROBE = (
    "from loadtests.scenarios import load_user_class\n"
    "from loadtests.scenarios.prediction_cache import request_name\n"
    "user = load_user_class('prediction-cache')\n"
    "print(user.__name__, request_name('hit'), request_name(None), sep='|')\n"
)


def test_requests_are_filed_under_their_cache_answer() -> None:
    env = {**os.environ, "REPEAT_SHARE": "0.5", "PATTERN": "prediction-cache"}
    result = subprocess.run(
        [sys.executable, "-c", PROBE],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split("|") == [
        "CachedPredictUser",
        "POST /predict [hit]",
        "POST /predict [no X-Cache]",
    ]
