"""Generated requests against a public api: no answer may be a 5xx, and every request
that breaks the api's schema must be refused with a 4xx.

Two generators, both sent in-process through the test's ``TestClient`` (so the app's
lifespan has run and its dependencies, the test predictor, Redis and PostgreSQL, are
real):

* schemathesis reads the api's own OpenAPI schema and makes, for every operation,
  requests that fit it (positive) and requests that break it (negative: wrong types,
  missing fields, odd headers and content types), which must get a 4xx. An operation
  for which it makes no case at all fails the check (a schema the generator cannot
  satisfy tests nothing); only an operation with nothing to break (no parameter, no
  body) may have no negative case;
* the schema cannot say how wide a row is, so nearly all of those stop at the 422 of
  the row check; :func:`rows` makes bodies with rows of the model's width (from
  ``GET /model``) and any JSON numbers in them (huge, tiny, negative zero, 64-bit
  integers), so the requests reach the model and its peers.

Example counts are bounded and generation is derandomised: the same cases every run, a
second or two per api. :func:`assert_no_server_errors_with_a_key` runs the same fuzz on an
api started with ``API_KEYS`` set, every request carrying the key.
"""

import contextlib
from typing import Any

import orjson
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode
from starlette.types import ASGIApp

MAX_EXAMPLES = 25
SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
NUMBERS = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(min_value=1 - 2**63, max_value=2**64 - 1),
    st.sampled_from([0, -0.0, 5e-324, 3.4028235e38, 3.5e38, -1e308]),
)


def rows(feature_names: list[str]) -> st.SearchStrategy[dict[str, Any]]:
    """``{"instances": [...]}`` bodies of 1..8 rows of ``len(feature_names)`` numbers each."""
    width = len(feature_names)
    as_list = st.lists(NUMBERS, min_size=width, max_size=width)
    as_object = st.fixed_dictionaries({name: NUMBERS for name in feature_names})
    return st.builds(
        lambda rows: {"instances": rows},
        st.one_of(st.lists(as_list, min_size=1, max_size=8), st.lists(as_object, min_size=1)),
    )


def served_model(metadata: dict[str, Any]) -> dict[str, Any]:
    """The metadata of the model an api serves (of its first part, for a chain or ensemble)."""
    parts = metadata.get("models")
    return next(iter(parts.values())) if isinstance(parts, dict) and parts else metadata


def example_body(operation: dict[str, Any]) -> dict[str, Any]:
    """A request body for an OpenAPI ``operation`` from the first examples its schema gives."""
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    return {
        name: prop["examples"][0]
        for name, prop in schema["properties"].items()
        if name in schema.get("required", []) and prop.get("examples")
    }


def example_errors(client: TestClient) -> list[str]:
    """The POST operations whose own schema example is refused (what /docs would show)."""
    failures = []
    for path, operations in client.get("/openapi.json").json()["paths"].items():
        post = operations.get("post", {})
        content = post.get("requestBody", {}).get("content", {})
        if "{" in path or "application/json" not in content:  # e.g. an image upload
            continue
        answer = client.post(path, json=example_body(post))
        if answer.status_code >= 400:
            failures.append(f"POST {path} example -> {answer.status_code} {answer.text[:200]}")
    return failures


def _request_kwargs(case: Any) -> dict[str, Any]:
    """A schemathesis case as keyword arguments of ``httpx.Client.request``."""
    kwargs = case.as_transport_kwargs(base_url="http://testserver")
    data = kwargs.pop("data", None)
    if isinstance(data, str | bytes):
        kwargs["content"] = data
    elif data is not None:
        kwargs["data"] = data
    for key in ("files", "allow_redirects", "timeout"):
        kwargs.pop(key, None)
    if not kwargs.get("cookies"):
        kwargs.pop("cookies", None)
    return kwargs


def _send(client: TestClient, failures: list[str], refused: bool = False, **kwargs: Any) -> None:
    """Send one generated request; record it in ``failures`` when it got a 5xx, or
    anything but a 4xx when it must be ``refused``."""
    what = f"{kwargs['method']} {kwargs['url']}"
    try:
        answer = client.request(**kwargs)
    except Exception as exc:  # the app raised through the test client
        failures.append(f"{what} raised {exc!r}: {kwargs}")
        return
    if answer.status_code >= 500:
        failures.append(f"{what} -> {answer.status_code} {answer.text[:200]}: {kwargs}")
    elif refused and not 400 <= answer.status_code < 500:
        failures.append(f"{what} -> {answer.status_code}, not a 4xx, for bad input: {kwargs}")


#: Keywords of a string's schema that some string breaks.
STRING_CONSTRAINTS = {"pattern", "format", "minLength", "maxLength", "enum", "const"}


def _has_input(operation: Any) -> bool:
    """True when a request can break the operation's schema: it takes a body, or a
    parameter other than a path segment that may be any string (``/jobs/{job_id}``)."""
    definition = operation.definition.raw
    if definition.get("requestBody"):
        return True
    for parameter in definition.get("parameters", []):
        schema = parameter.get("schema", {})
        any_string = schema.get("type") == "string" and not STRING_CONSTRAINTS & set(schema)
        if not (parameter.get("in") == "path" and any_string):
            return True
    return False


def _send_cases(client: TestClient, operation: Any, mode: Any, failures: list[str]) -> int:
    """Send the cases of ``mode`` for one operation; returns how many were made."""
    refused = mode == GenerationMode.NEGATIVE
    sent = 0

    @SETTINGS
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Any) -> None:
        nonlocal sent
        sent += 1
        _send(client, failures, refused=refused, **_request_kwargs(case))

    with contextlib.suppress(Unsatisfiable):  # counted below: no case at all
        check()
    return sent


def _fuzz_operation(client: TestClient, operation: Any, failures: list[str]) -> None:
    """Positive and negative cases of one operation, counted: none at all is a failure."""
    label = f"{operation.method.upper()} {operation.path}"
    if not _send_cases(client, operation, GenerationMode.POSITIVE, failures):
        failures.append(f"{label}: no positive case could be generated")
    sent = _send_cases(client, operation, GenerationMode.NEGATIVE, failures)
    if not sent and _has_input(operation):
        failures.append(f"{label}: no negative case could be generated")


def server_errors(client: TestClient) -> list[str]:
    """The generated requests that got a 5xx, or no 4xx when they broke the schema, as
    ``METHOD url -> status body: request``, and the operations no case was made for."""
    spec = client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    failures: list[str] = []
    for result in schema.get_all_operations():
        _fuzz_operation(client, result.ok(), failures)
    model = client.get("/model")
    feature_names = served_model(model.json()).get("feature_names") if model.is_success else None
    if feature_names:
        strategy = rows(feature_names)
        for path in _paths_taking_instances(spec):
            _post_rows(client, path, strategy, failures)
    return failures


def _post_rows(
    client: TestClient, path: str, strategy: st.SearchStrategy[Any], failures: list[str]
) -> None:
    @SETTINGS
    @given(body=strategy)
    def check(body: dict[str, Any]) -> None:
        headers = {"content-type": "application/json"}
        _send(
            client, failures, method="POST", url=path, content=orjson.dumps(body), headers=headers
        )

    check()


def assert_no_server_errors(client: TestClient) -> None:
    """Fail, listing the first ten, when generated requests get a 5xx, bad ones get no 4xx,
    an operation gets no case, or the schema's own examples are refused."""
    failures = example_errors(client) + server_errors(client)
    assert not failures, f"{len(failures)} generated requests failed:\n" + "\n".join(failures[:10])


#: The key a fuzzed api is started with (``API_KEYS=FUZZ_API_KEY``).
FUZZ_API_KEY = "fuzz-api-key-5b0e2c71"


def assert_no_server_errors_with_a_key(app: ASGIApp) -> None:
    """:func:`assert_no_server_errors` on ``app`` started with ``API_KEYS=FUZZ_API_KEY``,
    every request sending the key; without it the api answers 401."""
    with TestClient(app, headers={"X-API-Key": FUZZ_API_KEY}) as client:
        for path in client.get("/openapi.json").json()["paths"]:
            answer = client.post(path, headers={"X-API-Key": ""})
            assert answer.status_code == 401, f"POST {path} without the key: {answer.text}"
        assert_no_server_errors(client)


def _paths_taking_instances(spec: dict[str, Any]) -> list[str]:
    """The POST paths whose JSON body has an ``instances`` property."""
    found = []
    for path, operations in spec.get("paths", {}).items():
        body = operations.get("post", {}).get("requestBody", {})
        schema = body.get("content", {}).get("application/json", {}).get("schema", {})
        if "instances" in schema.get("properties", {}) and "{" not in path:
            found.append(path)
    return found
