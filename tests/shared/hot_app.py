"""A small service with both kinds of hot route: exact ``/predict``, templated ``/jobs/{id}``."""

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from shared.kit.app import ServiceApp, add_hot_route, create_app, json_response
from shared.kit.errors import NotFound
from shared.kit.schemas import ErrorResponse as Answer
from shared.kit.settings import ServiceSettings

KNOWN_JOB = "job-1"


async def predict(request: Request) -> Response:
    """Echo the body's size and who the authentication middleware (if any) says is asking."""
    user = request.scope.get("user")
    return json_response(
        {"size": len(await request.body()), "user": getattr(user, "display_name", None)}
    )


async def job(request: Request) -> Response:
    """The one known job; any other id is 404."""
    job_id = request.path_params["job_id"]
    if job_id != KNOWN_JOB:
        raise NotFound(f"no job {job_id!r}", field="job_id")
    return json_response({"job_id": job_id, "status": "finished"})


def hot_app(**settings: Any) -> ServiceApp:
    """``create_app`` with hot ``POST /predict`` and ``GET /jobs/{job_id}``."""
    app = create_app(ServiceSettings(**settings), title="hot")
    add_hot_route(app, "/predict", predict, request_model=None, response_model=Answer)
    add_hot_route(
        app, "/jobs/{job_id}", job, request_model=None, response_model=Answer, methods=("GET",)
    )
    return app
