"""A slow TCP proxy in front of a real server, that shows whether a service's round trips overlap.

    with SlowProxy(redis_url, delay_s=0.3) as proxy:
        api = load_service(..., REDIS_URL=proxy.url)
        ...
        assert proxy.max_in_flight >= 2

Every chunk a client sends is held for ``delay_s`` before it is passed on, so
each round trip through the proxy takes at least that long. A connection is
*in flight* from the moment the proxy receives a request's bytes until the
server's answer starts coming back. A service that waits on its store inside
the event loop can never have two round trips in flight: its loop is stuck in
the first until the answer arrives, and no other request of the process can
even start one. So ``max_in_flight >= 2`` after requests were sent while one
round trip was held proves the loop stayed free, with no timing threshold.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

Answer = TypeVar("Answer")


class SlowProxy:
    """Forwards 127.0.0.1:<port> to the server of ``url``, each client chunk held ``delay_s``.

    ``url`` is a redis:// or postgresql:// URL; :attr:`url` is the same one through the proxy.
    """

    def __init__(self, url: str, delay_s: float) -> None:
        self._parts = urlsplit(url)
        assert self._parts.hostname is not None
        assert self._parts.port is not None
        self.upstream = (self._parts.hostname, self._parts.port)
        self.delay_s = delay_s
        self.port = 0
        self.url = ""
        self.in_flight = 0
        self.max_in_flight = 0
        self.round_trips = 0
        self.holding = threading.Event()  # set once a round trip is being held
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None

    def overlapped_or_shared(self, requests: int) -> bool:
        """True when ``requests`` requests' round trips overlapped, or fewer were needed.

        A service that batches the requests of a loop turn (one MULTI/EXEC for them all)
        may need a single round trip in flight; one that waits in its loop needs at least
        one per request, one after the other.
        """
        return self.max_in_flight >= 2 or self.round_trips < requests

    def reset(self) -> None:
        """Forget the round trips counted so far (e.g. a pool's connection set-up)."""
        self.max_in_flight = self.in_flight
        self.round_trips = 0
        self.holding.clear()

    def __enter__(self) -> SlowProxy:
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self._loop
        ).result(5)
        self.port = self._server.sockets[0].getsockname()[1]
        auth = self._parts.netloc.rpartition("@")[0]
        netloc = f"{auth}@127.0.0.1:{self.port}" if auth else f"127.0.0.1:{self.port}"
        self.url = urlunsplit(self._parts._replace(netloc=netloc))
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            others = asyncio.all_tasks() - {asyncio.current_task()}
            for task in others:
                task.cancel()
            # Let every connection's task finish its clean-up on this loop, now: left
            # pending, they would be finalised later by the garbage collector, on
            # whatever thread runs it, after the loop has gone.
            await asyncio.gather(*others, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    async def _serve(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await asyncio.open_connection(*self.upstream)
        waiting = [False]  # this connection has a request in flight
        try:
            await asyncio.gather(
                self._to_server(client_in, server_out, waiting),
                self._to_client(server_in, client_out, waiting),
            )
        finally:
            if waiting[0]:
                self.in_flight -= 1
            for writer in (client_out, server_out):
                writer.close()

    async def _to_server(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, waiting: list[bool]
    ) -> None:
        while chunk := await source.read(65536):
            if not waiting[0]:
                waiting[0] = True
                self.in_flight += 1
                self.round_trips += 1
                self.max_in_flight = max(self.max_in_flight, self.in_flight)
                self.holding.set()
            await asyncio.sleep(self.delay_s)
            sink.write(chunk)
            with contextlib.suppress(ConnectionError):
                await sink.drain()
        sink.close()

    async def _to_client(
        self, source: asyncio.StreamReader, sink: asyncio.StreamWriter, waiting: list[bool]
    ) -> None:
        while chunk := await source.read(65536):
            if waiting[0]:
                waiting[0] = False
                self.in_flight -= 1
            sink.write(chunk)
            with contextlib.suppress(ConnectionError):
                await sink.drain()
        sink.close()


async def one_then_more_while_held(
    proxy: SlowProxy, send: Callable[[], Awaitable[Answer]], more: int = 5
) -> list[Answer]:
    """Send one request and, once a round trip of it is held at ``proxy``, ``more`` others.

    The round trips in flight before (a pool's or a client's start-up) are let through and
    not counted. Then ``proxy.max_in_flight >= 2`` shows the others' round trips started
    while the first was held: the service's event loop was not stuck in it.
    """
    while proxy.in_flight:
        await asyncio.sleep(0.05)
    proxy.reset()
    first = asyncio.ensure_future(send())
    assert await asyncio.to_thread(proxy.holding.wait, 10), "no round trip reached the proxy"
    later = [asyncio.ensure_future(send()) for _ in range(more)]
    return await asyncio.gather(first, *later)
