"""The fuzz itself: it fails an api that accepts bad input or whose schema yields no case."""

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.testclient import TestClient
from pydantic import BaseModel, Field

from tests.api_fuzz import server_errors


class Row(BaseModel):
    """A body the schema constrains: a number from 0 to 10. Strict, as JSON Schema's
    ``number`` is: in pydantic's lax mode ``true`` would pass as 1.0, and the fuzz's
    negative cases send it (a random seed found it)."""

    value: float = Field(ge=0, le=10, strict=True)


class Impossible(BaseModel):
    """A body no value satisfies: at least 5 and at most 4."""

    value: int = Field(ge=5, le=4)


def app_with(route: str, model: type[BaseModel], validate: bool) -> TestClient:
    """An app whose one POST takes ``model``; checked by FastAPI, or accepted as it comes."""
    app = FastAPI()
    if validate:

        @app.post(route)
        async def checked(body: model) -> dict:  # type: ignore[valid-type]
            return {"ok": True}

    else:

        @app.post(route, openapi_extra={"requestBody": {"content": {"application/json": {
            "schema": model.model_json_schema()}}, "required": True}})  # fmt: skip
        async def unchecked(request: Request) -> JSONResponse:
            await request.body()
            return JSONResponse({"ok": True})

    return TestClient(app)


def test_an_api_that_checks_its_input_passes() -> None:
    assert server_errors(app_with("/rows", Row, validate=True)) == []


def test_an_api_that_answers_200_to_bad_input_fails() -> None:
    failures = server_errors(app_with("/rows", Row, validate=False))
    assert failures
    assert all("not a 4xx, for bad input" in failure for failure in failures)


def test_an_operation_without_a_generated_case_fails() -> None:
    failures = server_errors(app_with("/never", Impossible, validate=True))
    assert "POST /never: no positive case could be generated" in failures
