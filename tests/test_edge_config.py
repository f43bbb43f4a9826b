"""The edge's HAProxy config (compose/edge/haproxy.cfg) says what the api would say.

Its 503s are written in HAProxy's log-format strings, not built by shared/kit: these checks
keep them the contract's JSON error (shared/kit/errors.py), with the api's Retry-After,
message and request-id rule, and keep the probe paths it never refuses the api's own.
No HAProxy needed: the config is read as text (the image build checks its syntax, 2.6's).
"""

import re
from pathlib import Path

import orjson
import pytest

from shared.kit.errors import error_body
from shared.kit.logs import request_id_var
from shared.kit.overload import UNBOUNDED_PREFIXES, InFlightLimit
from shared.kit.shedding_protocol import _SANE_REQUEST_ID

CONFIG = (Path(__file__).parents[1] / "compose" / "edge" / "haproxy.cfg").read_text()
REQUEST_ID_FETCH = "%[req.hdr(x-request-id)]"
#: Every 503 the edge writes: ``http-request return`` (refused at once) and ``http-error``
#: (HAProxy's own: a queue wait past its timeout, no api up).
ANSWERS = [
    line.strip()
    for line in CONFIG.splitlines()
    if line.strip().startswith(("http-request return", "http-error"))
]


def body_of(answer: str, request_id: str) -> dict[str, object]:
    """The JSON body an answer line gives a request carrying ``request_id``."""
    template = re.search(r"lf-string '([^']*)'", answer)
    assert template, answer
    return orjson.loads(template[1].replace(REQUEST_ID_FETCH, request_id))


def test_there_is_an_answer_for_overload_and_for_a_missing_api() -> None:
    codes = sorted(body_of(a, "r")["error"]["code"] for a in ANSWERS)  # type: ignore[index]
    assert codes == ["dependency_unavailable", "overloaded", "overloaded"]


@pytest.mark.parametrize("answer", ANSWERS)
def test_each_503_is_the_contract_s_error_with_retry_after_and_the_request_id(answer: str) -> None:
    assert "status 503" in answer
    assert "content-type application/json" in answer
    limit = InFlightLimit(1)
    assert f"hdr Retry-After {limit.retry_after_s} " in answer
    assert f'hdr X-Request-ID "{REQUEST_ID_FETCH}"' in answer
    body = body_of(answer, "r-1")
    error = body["error"]
    assert isinstance(error, dict)
    token = request_id_var.set("r-1")
    try:
        assert body == error_body(error["code"], error["message"])  # the api's own shape
    finally:
        request_id_var.reset(token)
    if error["code"] == "overloaded":
        assert error["message"] == limit.message()


def test_the_request_id_rule_is_the_api_s() -> None:
    rule = re.search(r"req\.hdr\(x-request-id\) -m reg (\S+) ", CONFIG)
    assert rule
    assert rule[1] == _SANE_REQUEST_ID.pattern.decode()


def test_probes_and_scrapes_are_the_paths_the_api_never_sheds() -> None:
    probe = re.search(r"acl probe path_beg (.+)", CONFIG)
    assert probe
    assert tuple(probe[1].split()) == UNBOUNDED_PREFIXES
    refusals = [a for a in ANSWERS if a.startswith("http-request return")]
    assert all(a.endswith("!probe") for a in refusals)


def test_the_bounds_come_from_the_environment_compose_sets() -> None:
    assert 'maxconn "${EDGE_MAXCONN}"' in CONFIG
    assert 'queue(api) ge "${EDGE_MAX_QUEUE}"' in CONFIG
    assert 'timeout queue "${EDGE_QUEUE_TIMEOUT_MS}"' in CONFIG
    compose = (Path(__file__).parents[1] / "compose" / "edge.yaml").read_text()
    for name in ("EDGE_MAXCONN", "EDGE_MAX_QUEUE", "EDGE_QUEUE_TIMEOUT_MS"):
        assert f"{name}: ${{{name}:-" in compose
