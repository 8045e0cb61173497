"""Log lines: text for people, or one JSON object per line for a log shipper (``CLINIC_LOG_FORMAT``).

Each line says what is known of the work at hand, from context variables that the API (per
request) and the workers (per message) set: ``request_id`` (kept from ``X-Request-ID``, or made,
and carried with the booking's messages, so one grep follows a booking through every process),
``booking_id``, ``message_id``, ``actor`` and ``queue``. A traceback is reduced to its frames and
the exception's class: an exception's message may quote a patient's name, which never reaches a log.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import sys
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


def configure(log_format: str, *, level: int = logging.INFO, stream=None) -> None:
    """Send the root logger's lines to ``stream`` (stderr) in ``log_format``, replacing any handler."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
