"""A stand-in for the client's server that takes job callbacks (not part of the serving side).

``POST /callbacks`` logs each delivery as one JSON line (``make logs``
shows them) and keeps the latest ones in memory; ``GET /callbacks/{job_id}``
answers what was delivered for a job. Submit with
``"callback_url": "http://callback-receiver:8080/callbacks"`` to see it work.
"""

import logging
from collections import OrderedDict
from typing import Any

from fastapi import Request
from starlette.responses import Response

from shared.kit.app import create_app, json_response
from shared.kit.errors import NotFound
from shared.kit.schemas import decode_json
from shared.kit.settings import ServiceSettings

KEEP = 1000
log = logging.getLogger("callback-receiver")
settings = ServiceSettings()
app = create_app(settings, title="callback-receiver", description=__doc__.split("\n\n")[0])
received: OrderedDict[str, dict[str, Any]] = OrderedDict()


@app.post("/callbacks", status_code=204)
async def take_callback(request: Request) -> Response:
    """Record one delivered job resource."""
    body = decode_json(await request.body())
    job_id = str(body.get("job_id")) if isinstance(body, dict) else "?"
    received[job_id] = body
    while len(received) > KEEP:
        received.popitem(last=False)
    log.info("callback received", extra={"job_id": job_id, "body": body})
    return Response(status_code=204)


@app.get("/callbacks/{job_id}")
async def delivered(job_id: str) -> Response:
    """What was delivered for ``job_id``."""
    if job_id not in received:
        raise NotFound(f"no callback for job {job_id!r}", field="job_id")
    return json_response(received[job_id])
