"""Keep the garbage collector off the objects a service made to start.

Python's cyclic garbage collector, on its oldest generation, walks every object
the process tracks. After its imports (FastAPI, pydantic, numpy, redis, RQ) an
api tracks about 75,000 of them; one such collection took about 55 ms on these
2-core machines, and under load it comes every few seconds: a pause for every
request in flight, the tail of the latency. Those objects live as long as the
process. :func:`freeze_startup_heap` moves them to the permanent generation,
which collections skip, so a full collection walks only what was made since.

A service freezes once its start is done: an HTTP app when its lifespan has
started (:func:`freezing_after_startup`, wired by :class:`shared.kit.app.ServiceApp`),
a queue worker before its first job. ``FREEZE_STARTUP_HEAP=false`` turns it off
(to measure the difference side by side).
"""

import gc
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("shared.kit.startup_heap")

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]


def freeze_startup_heap() -> int:
    """Collect once, then move every tracked object to the permanent generation; how many."""
    gc.collect()
    gc.freeze()
    frozen = gc.get_freeze_count()
    log.info("startup heap frozen: %d objects out of the collector's reach", frozen)
    return frozen


def freezing_after_startup(send: Send) -> Send:
    """An ASGI lifespan ``send`` that freezes the heap as it reports the startup complete."""

    async def sending(message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            freeze_startup_heap()
        await send(message)

    return sending
