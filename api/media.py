"""The only request body the API reads: strict JSON, at most 64 KiB, UTF-8, finite, flat enough."""

from __future__ import annotations

import json
import math
from typing import Any

import falcon
import falcon.media

from api.errors import BadBody, body_too_large
from clinic.config import MAX_REQUEST_BODY_BYTES


class _Refused(ValueError):
    """A reason of ours, safe to show: it quotes nothing from the body."""


def _no_constants(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise _Refused("a number is too large")
    return number


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    body = dict(pairs)
    if len(body) != len(pairs):
        raise _Refused("an object names a key twice")
    return body


_decoder = json.JSONDecoder(parse_constant=_no_constants, parse_float=_finite, object_pairs_hook=_unique_keys)


class StrictJSON(falcon.media.BaseHandler):
    """Refuses, with a 400 naming ``body``, what ``json.loads`` would take but a client should not
    send: invalid UTF-8, NaN and Infinity, numbers that do not fit a float, duplicate keys, nesting
    deep enough to exhaust the parser; a body above the limit is 413 even without a Content-Length."""

    def deserialize(self, stream, content_type: str | None, content_length: int | None) -> Any:
        data = stream.read(MAX_REQUEST_BODY_BYTES + 1)
        if len(data) > MAX_REQUEST_BODY_BYTES:
            raise body_too_large(MAX_REQUEST_BODY_BYTES)
        if not data.strip():
            raise BadBody("must be a JSON object, and is empty")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            raise BadBody("is not valid UTF-8") from None
        try:
            return _decoder.decode(text)
        except RecursionError:
            raise BadBody("is nested too deeply") from None
        except ValueError as error:
            raise BadBody(f"is not valid JSON ({_reason(error)})") from None

    def serialize(self, media: Any, content_type: str | None = None) -> bytes:
        return json.dumps(media, ensure_ascii=False).encode("utf-8")


def _reason(error: ValueError) -> str:
    """The decoder's message without any part of the body (it may hold a patient's name)."""
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg} at character {error.pos}"
    if isinstance(error, _Refused):
        return str(error)
    return "a number has too many digits"  # int() refuses more than sys.get_int_max_str_digits()


def handlers() -> falcon.media.Handlers:
    """JSON only: no form or multipart parser is there to turn another content type into a booking."""
    return falcon.media.Handlers({falcon.MEDIA_JSON: StrictJSON()})
