"""The bad-input table of every public api that takes ``{"instances": [...]}`` of iris rows.

Every pattern's api decodes its body with :func:`shared.kit.schemas.decode_rows`, so every one
owes the same answers: a 422 naming the field and saying what is wrong, or a 413 for a
body over its limit. The in-process tests and the e2e tests of each such pattern run the
whole table against their routes (``POST /predict``, and ``POST /jobs`` where there is
one), then check that the api still answers a good request.
"""

from dataclasses import dataclass

import httpx
import orjson

from tests.compose_stack import ComposeStack
from tests.metrics_text import MetricsChange

GOOD_ROW = [5.1, 3.5, 1.4, 0.2]


@dataclass(frozen=True)
class BadInput:
    """One bad body and the error it must get."""

    name: str
    body: bytes
    field: str | None
    says: str
    status: int = 422

    def __str__(self) -> str:
        return self.name  # the test id


def _case(name: str, body: object, field: str | None, says: str, status: int = 422) -> BadInput:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return BadInput(name, content, field, says, status)


def bad_inputs(max_instances: int = 1000, max_body_bytes: int = 1_048_576) -> list[BadInput]:
    """The table, for an api with these ``MAX_INSTANCES`` and ``MAX_BODY_BYTES``."""
    too_many = max_instances + 1
    return [
        _case("short row", {"instances": [[5.1, 3.5, 1.4]]}, "instances[0]", "has 3 values"),
        _case("text", {"instances": [[5.1, "wide", 1.4, 0.2]]}, "instances[0][1]", 'got "wide"'),
        _case("NaN", b'{"instances": [[5.1, 3.5, NaN, 0.2]]}', "body", "not valid JSON"),
        _case("null", {"instances": [[5.1, 3.5, None, 0.2]]}, "instances[0][2]", "got null"),
        _case("no rows", {"instances": []}, "instances", "at least one row"),
        _case(
            "too many rows",
            {"instances": [GOOD_ROW] * too_many},
            "instances",
            f"holds {too_many} rows; at most {max_instances}",
        ),
        _case("no instances", {"rows": [GOOD_ROW]}, "instances", '"instances" list'),
        _case("not JSON", b"instances=1", "body", "not valid JSON"),
        _case("too big", b"x" * (max_body_bytes + 1), None, "", status=413),
    ]


def assert_refused(answer: httpx.Response, case: BadInput) -> None:
    """``answer`` is the clear error ``case`` must get, with the request's id."""
    assert answer.status_code == case.status, (case.name, answer.text[:300])
    error = answer.json()["error"]
    assert error.get("field") == case.field, (case.name, error)
    assert case.says in error["message"], (case.name, error)
    assert error["request_id"] == answer.headers["x-request-id"]


def assert_refused_by_the_stack(stack: ComposeStack, path: str, case: BadInput) -> None:
    """``case`` posted to a running stack's api is refused as it must be, and the api
    called none of its peers for it (its outbound-call count is unchanged)."""
    change = MetricsChange(lambda: stack.get("/metrics").text)
    headers = {"Content-Type": "application/json"}
    assert_refused(stack.post(path, content=case.body, headers=headers), case)
    assert change.increase("mlsp_outbound_duration_seconds_count") == 0, case.name
