"""web-single's api in-process: the public contract, its errors and its docs."""

import asyncio
import re
from collections.abc import Callable, Iterator
from types import ModuleType

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.api_fuzz import (
    FUZZ_API_KEY,
    assert_no_server_errors,
    assert_no_server_errors_with_a_key,
)
from tests.bad_input import GOOD_ROW, BadInput, assert_refused, bad_inputs
from tests.metrics_text import MetricsChange, sample_total


@pytest.fixture
def client(load_service: Callable[..., ModuleType]) -> Iterator[TestClient]:
    service = load_service("web-single", "api", MAX_INSTANCES="6", MAX_BODY_BYTES="4096")
    with TestClient(service.app) as client:  # runs the lifespan: loads the model
        yield client


def test_predicts_the_exported_examples(client: TestClient) -> None:
    examples = client.get("/model").json()["examples"]
    answer = client.post("/predict", json={"instances": [e["input"] for e in examples]})
    assert answer.status_code == 200
    body = answer.json()
    assert (body["model_name"], body["model_version"]) == ("iris", "1")
    assert [p["label"] for p in body["predictions"]] == [e["label"] for e in examples]
    for prediction, example in zip(body["predictions"], examples, strict=True):
        assert list(prediction["probabilities"].values()) == pytest.approx(
            example["probabilities"], abs=1e-4
        )


def test_named_features_give_the_same_answer(client: TestClient) -> None:
    row = [6.7, 3.0, 5.2, 2.3]
    names = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    by_list = client.post("/predict", json={"instances": [row]}).json()
    by_name = client.post(
        "/predict", json={"instances": [dict(zip(names, row, strict=True))]}
    ).json()
    assert by_list == by_name
    assert by_list["predictions"][0]["label"] == "virginica"


@pytest.mark.parametrize("case", bad_inputs(max_instances=6, max_body_bytes=4096), ids=str)
def test_bad_input_gets_a_clear_error(client: TestClient, case: BadInput) -> None:
    answer = client.post("/predict", content=case.body)
    assert_refused(answer, case)
    assert client.post("/predict", json={"instances": [GOOD_ROW]}).status_code == 200


def test_ready_once_the_model_is_loaded_and_metrics_show_inference(client: TestClient) -> None:
    assert client.get("/health/ready").json() == {"status": "ready"}
    change = MetricsChange(lambda: client.get("/metrics").text)
    client.post("/predict", json={"instances": [[5.1, 3.5, 1.4, 0.2]]})
    metrics = client.get("/metrics").text
    sha256 = client.get("/model").json()["sha256"]
    assert sample_total(metrics, "mlsp_model_info", model="iris", version="1", sha256=sha256) == 1
    assert change.increase("mlsp_stage_duration_seconds_count", stage="inference") == 1
    predict = {"method": "POST", "route": "/predict"}
    assert change.increase("mlsp_http_requests_total", **predict, status="200") == 1


def test_openapi_documents_the_contract(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    operation = spec["paths"]["/predict"]["post"]
    assert (
        "instances"
        in operation["requestBody"]["content"]["application/json"]["schema"]["properties"]
    )
    assert {"200", "413", "422"} <= set(operation["responses"])
    assert client.get("/docs").status_code == 200


def test_generated_requests_get_no_server_error(client: TestClient) -> None:
    assert_no_server_errors(client)


def test_generated_requests_with_a_key_set_get_no_server_error(
    load_service: Callable[..., ModuleType],
) -> None:
    service = load_service(
        "web-single", "api", MAX_INSTANCES="6", MAX_BODY_BYTES="4096", API_KEYS=FUZZ_API_KEY
    )
    assert_no_server_errors_with_a_key(service.app)


async def test_concurrent_requests_share_model_runs_and_each_gets_its_own_answer(
    load_service: Callable[..., ModuleType],
) -> None:
    service = load_service("web-single", "api")
    rows = [[4.5 + i / 10, 3.0, 1.0 + i / 5, 0.1 + i / 20] for i in range(24)]
    transport = httpx.ASGITransport(app=service.app)
    async with (
        service.lifespan(service.app),
        httpx.AsyncClient(transport=transport, base_url="http://api") as client,
    ):
        alone = [(await client.post("/predict", json={"instances": [r]})).json() for r in rows]
        runs_before = await model_runs(client)
        together = await asyncio.gather(
            *(client.post("/predict", json={"instances": [r]}) for r in rows)
        )
        assert [answer.json() for answer in together] == alone
        runs, requests = (
            after - before
            for after, before in zip(await model_runs(client), runs_before, strict=True)
        )
        assert requests == len(rows)
        assert runs < len(rows)  # runs were shared


async def model_runs(client: httpx.AsyncClient) -> tuple[float, float]:
    """(runs, requests they carried) so far, from ``mlsp_model_requests_per_run``."""
    metrics = (await client.get("/metrics")).text
    found = dict(re.findall(r"^mlsp_model_requests_per_run_(count|sum) (\S+)$", metrics, re.M))
    return float(found["count"]), float(found["sum"])
