"""The transport ceiling of ``make bench`` answers what the bare endpoints answer."""

import re
from pathlib import Path

from loadtests.bench.bare import BODY

NGINX_CONF = Path(__file__).resolve().parents[2] / "loadtests/bench/nginx/nginx.conf"


def test_nginx_answers_predict_with_the_bare_endpoints_body() -> None:
    predict = re.search(
        r"location = /predict \{.*?return 200 '([^']*)';", NGINX_CONF.read_text(), re.DOTALL
    )
    assert predict is not None, "nginx.conf has no fixed answer for /predict"
    assert predict.group(1).encode() == BODY
