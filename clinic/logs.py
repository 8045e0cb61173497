"""Log lines: text for people, or one JSON object per line for a log shipper (``CLINIC_LOG_FORMAT``).

Each line says what is known of the work at hand, from context variables that the API (per
request) and the workers (per message) set: ``request_id`` (kept from ``X-Request-ID``, or made,
and carried with the booking's messages, so one grep follows a booking through every process),
``booking_id``, ``message_id``, ``actor`` and ``queue``. A traceback is reduced to its frames and
the exception's class: an exception's message may quote a patient's name, which never reaches a log.

Lines leave a process in batches (``CLINIC_LOG_FLUSH_SECONDS``, :class:`BatchedStreamHandler`):
a warning or worse at once, with every line before it.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import select
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime

#: The fields a line carries when they are known, in this order.
FIELDS = ("request_id", "booking_id", "message_id", "actor", "queue")
_CONTEXT: dict[str, contextvars.ContextVar[str | None]] = {
    name: contextvars.ContextVar(name, default=None) for name in FIELDS
}
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def current(name: str) -> str | None:
    """The value of one context field here and now (e.g. the request id to send with a message)."""
    return _CONTEXT[name].get()


@contextlib.contextmanager
def bound(**fields: str | None) -> Iterator[None]:
    """Within the block, log lines (and messages sent) carry these fields."""
    tokens = [_CONTEXT[name].set(value) for name, value in fields.items()]
    try:
        yield
    finally:
        for name, token in zip(fields, tokens, strict=True):
            _CONTEXT[name].reset(token)


def bind(**fields: str | None) -> list[tuple[str, contextvars.Token]]:
    """Set fields until :func:`unbind` (for hooks that open and close in two calls)."""
    return [(name, _CONTEXT[name].set(value)) for name, value in fields.items()]


def unbind(tokens: list[tuple[str, contextvars.Token]]) -> None:
    for name, token in reversed(tokens):
        _CONTEXT[name].reset(token)


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, pid and the known context fields."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "pid": record.process,
        }
        for name in FIELDS:
            value = getattr(record, name, None) or _CONTEXT[name].get()
            if value is not None:
                line[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            kind, _error, trace = record.exc_info
            line["exception"] = f"{kind.__module__}.{kind.__qualname__}"
            line["frames"] = [f"{f.filename}:{f.lineno} in {f.name}" for f in traceback.extract_tb(trace)]
        return json.dumps(line, ensure_ascii=False, default=str)


#: A batch is written in pieces of at most this many bytes, each whole lines: a write of up to
#: PIPE_BUF bytes to a pipe that other processes share never interleaves with theirs.
BATCH_BYTES = getattr(select, "PIPE_BUF", 4096)


class BatchedStreamHandler(logging.StreamHandler):
    """A StreamHandler that writes its lines in batches instead of one ``write`` each.

    A line of INFO or below waits at most ``interval`` seconds; a WARNING or worse is written at
    once, after every line before it, so the lines that explain a failure are out when it is.
    Under load this turns hundreds of writes a second, each a system call that lets another
    thread take the GIL (and, in a Dramatiq worker, a message its group's main process must
    read and write again), into a few: in the benchmark's pipeline it saved 8% of the Python
    CPU per booking. The cost: a process killed with ``kill -9`` loses its last ``interval``
    seconds of INFO lines. The standard ``MemoryHandler`` buffers too, but hands its target the
    records one by one, so it writes as often as before.

    ``flush`` (a flusher thread every ``interval``, and ``logging.shutdown`` at exit) writes what
    is held. ``emit`` runs under the handler's lock, as ``flush`` does."""

    def __init__(self, stream=None, interval: float = 0.2) -> None:
        super().__init__(stream)
        self.interval = interval
        self.held: list[str] = []
        self.held_bytes = 0
        self.batching = True  # False: every line at once (see ``write_at_once``)
        self._flusher_pid: int | None = None  # the process the flusher thread runs in

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + self.terminator
        except Exception:
            self.handleError(record)
            return
        size = len(line) if line.isascii() else len(line.encode("utf-8", "replace"))
        if self.held_bytes + size > BATCH_BYTES:
            self._write()
        self.held.append(line)
        self.held_bytes += size
        if record.levelno >= logging.WARNING or not self.batching:
            self.flush()
        elif self._flusher_pid != os.getpid():  # first line, or a forked child (a Dramatiq worker)
            self._flusher_pid = os.getpid()
            threading.Thread(target=self._flush_every_interval, name="log-flusher", daemon=True).start()

    def flush(self) -> None:
        with self.lock:
            self._write()
            super().flush()

    def _write(self) -> None:
        if self.held:
            text = "".join(self.held)
            self.held.clear()
            self.held_bytes = 0
            try:
                self.stream.write(text)
            except Exception:  # a stream that cannot be written leaves nowhere to report it
                pass

    def _flush_every_interval(self) -> None:
        while True:
            time.sleep(self.interval)
            if self.held:
                self.flush()


def handler(stream, flush_seconds: float) -> logging.StreamHandler:
    """Lines to ``stream``: in batches held at most ``flush_seconds``, or each at once for 0."""
    return BatchedStreamHandler(stream, flush_seconds) if flush_seconds > 0 else logging.StreamHandler(stream)


def configure(log_format: str, *, level: int = logging.INFO, stream=None, flush_seconds: float = 0.0) -> None:
    """Send the root logger's lines to ``stream`` (stderr) in ``log_format``, replacing any handler;
    with ``flush_seconds``, in batches (:class:`BatchedStreamHandler`)."""
    new = handler(stream or sys.stderr, flush_seconds)
    new.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(new)
    root.setLevel(level)


def batch_lines(flush_seconds: float) -> None:
    """The root logger's stream handlers (Dramatiq's, in a worker process), batched alike, each
    keeping its stream, format and level."""
    if flush_seconds <= 0:
        return
    root = logging.getLogger()
    for old in list(root.handlers):
        if type(old) is logging.StreamHandler:
            new = BatchedStreamHandler(old.stream, flush_seconds)
            new.setFormatter(old.formatter)
            new.setLevel(old.level)
            root.removeHandler(old)
            root.addHandler(new)


def write_at_once() -> None:
    """Write every line the root logger's handlers hold, and each later line at once: for a
    process about to end without ``logging.shutdown``, as a Dramatiq worker process does (its
    last lines come after the last hook it calls)."""
    for each in logging.getLogger().handlers:
        if isinstance(each, BatchedStreamHandler):
            each.batching = False
        each.flush()
