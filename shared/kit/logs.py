"""JSON logs, one object per line, carrying the request id of the current request."""

import io
import logging
import os
import select
import sys
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from typing import BinaryIO

import orjson

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

# Attributes every LogRecord has; anything else was passed with ``extra=`` and is logged.
_STANDARD_ATTRS = frozenset(vars(logging.makeLogRecord({}))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's ANSI-coloured copy of msg
}


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, service, logger, message, extras.

    It runs for every access log line, so the second's text is formatted once
    per second and the extras are found with one set difference.
    """

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        self._second = -1
        self._second_text = ""

    def _timestamp(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._second_text}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "ts": self._timestamp(record),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        attrs = vars(record)
        for key in attrs.keys() - _STANDARD_ATTRS:
            if not key.startswith("_"):
                entry[key] = attrs[key]
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


PIPE_BUF = select.PIPE_BUF  # a pipe write of at most this many bytes is never interleaved
MAX_BUFFERED_BYTES = 1 << 16  # written out at once past this much


def line_aligned_chunks(lines: list[bytes], limit: int = PIPE_BUF) -> Iterator[bytes]:
    """``lines`` joined into chunks of whole lines, each at most ``limit`` bytes
    (a longer line is a chunk of its own)."""
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        if chunk and size + len(line) > limit:
            yield b"".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line)
    if chunk:
        yield b"".join(chunk)


class BufferedStreamHandler(logging.StreamHandler):
    """A stream handler that keeps lines and writes them every ``interval_s``
    (and at once for a WARNING or worse, past 64 KiB, and at exit), not once per line.

    One write per line is one system call, and on Docker one wake-up of the
    daemon that copies the container's output into its log: for an api that
    logs every request, about a tenth of its rate (web-single 3.4k -> 3.8k req/s
    buffered). The lines go out in writes of whole lines of at most ``PIPE_BUF``
    bytes, which the kernel never interleaves with another writer's: the server
    processes of one container (``WEB_CONCURRENCY``) share its stdout, and no
    line of one is cut by a line of another. Lines of the last ``interval_s``
    can be lost if the process is killed outright (SIGKILL, out of memory); an
    orderly stop flushes.

    ``stream`` is a binary stream; by default a copy of stdout's descriptor,
    unbuffered (the lines are this handler's buffer).
    """

    def __init__(self, interval_s: float, stream: BinaryIO | None = None) -> None:
        if stream is None:
            stream = io.FileIO(os.dup(sys.stdout.fileno()), "w")
        super().__init__(stream)  # type: ignore[arg-type]
        self.interval_s = interval_s
        self._lines: list[bytes] = []
        self._size = 0
        self._stopped = threading.Event()
        threading.Thread(target=self._flush_every_interval, name="log-flush", daemon=True).start()

    def _flush_every_interval(self) -> None:
        while not self._stopped.wait(self.interval_s):
            self.flush()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = (self.format(record) + self.terminator).encode()
            with self.lock:  # type: ignore[union-attr]
                self._lines.append(line)
                self._size += len(line)
                if record.levelno >= logging.WARNING or self._size >= MAX_BUFFERED_BYTES:
                    self._write_lines()
        except Exception:
            self.handleError(record)

    def flush(self) -> None:
        """Write the lines held so far."""
        with self.lock:  # type: ignore[union-attr]
            self._write_lines()

    def _write_lines(self) -> None:
        lines, self._lines, self._size = self._lines, [], 0
        for chunk in line_aligned_chunks(lines):
            view = memoryview(chunk)
            while view:  # a raw stream may take part of a long chunk
                view = view[self.stream.write(view) :]
        self.stream.flush()

    def close(self) -> None:
        self._stopped.set()
        self.flush()
        super().close()


def configure_logging(service: str, level: str = "INFO", flush_interval_s: float = 0.0) -> None:
    """Send every logger's records (uvicorn's included) to stdout as JSON lines;
    with ``flush_interval_s`` > 0, buffered and written that often
    (:class:`BufferedStreamHandler`)."""
    # What the lines never show need not be gathered for every record: the caller's
    # file and line (a stack walk) and the thread/process names. These are the
    # switches the logging HOWTO's "Optimization" section names.
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = (
        BufferedStreamHandler(flush_interval_s)
        if flush_interval_s > 0
        else logging.StreamHandler(sys.stdout)
    )
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    # Requests are logged once, by shared.kit.middleware, with the request id.
    logging.getLogger("uvicorn.access").disabled = True
