"""A service app for the tests of :mod:`shared.kit.serve`: says which process answered.

``GET /pid`` answers the serving process's id; ``GET /slow`` answers it after
``SLOW_S`` seconds (a request still in flight when the server is told to stop).
"""

import asyncio
import os

from starlette.responses import Response

from shared.kit.app import create_app, json_response
from shared.kit.settings import ServiceSettings

SLOW_S = 1.0

app = create_app(ServiceSettings(), title="serve-test")


@app.get("/pid")
async def pid() -> Response:
    """The id of the process that serves this request."""
    return json_response({"pid": os.getpid()})


@app.get("/slow")
async def slow() -> Response:
    """The same, ``SLOW_S`` seconds later."""
    await asyncio.sleep(SLOW_S)
    return json_response({"pid": os.getpid()})
