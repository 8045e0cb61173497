"""What each operation reads and answers (``Operation``), and the middleware that holds every
request body to its declared type before the responder runs. ``api.openapi`` documents the same
``Operation`` objects, so the document and the checks cannot drift apart."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, get_args, get_origin

import falcon
import msgspec

from api.bodies import PATTERN_HINTS
from api.errors import body_too_large
from clinic.config import MAX_REQUEST_BODY_BYTES
from clinic.errors import InvalidField


@dataclass(frozen=True)
class Reply:
    """One documented answer: its status, what it means, its body type and its headers."""

    status: int
    description: str
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)  # name -> what it says
    media_type: str = "application/json"  # of the body (text/html for the desk, text/plain for metrics)


@dataclass(frozen=True)
class Operation:
    """One method of one path. A resource lists its operations in ``operations`` (method -> Operation)
    and who may call them in ``scope`` (``client``, ``admin`` or None for public)."""

    operation_id: str
    summary: str
    replies: tuple[Reply, ...]
    body: Any = None  # the request body's type (a msgspec Struct, maybe Annotated), or None
    body_required: bool = True  # False: an empty body is allowed, and req.context.body is None
    max_body: int = MAX_REQUEST_BODY_BYTES
    parameters: tuple[dict, ...] = ()
    description: str | None = None
    media_type: str = "application/json"  # of its answers, errors included unless application/json


def operation_of(resource: object, method: str) -> Operation | None:
    return getattr(resource, "operations", {}).get(method.lower())


class BodyLimit:
    """Middleware before authentication: a body over its operation's limit is refused (413) by its
    Content-Length, before anything reads it or asks the database about a key."""

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        operation = operation_of(resource, req.method) if resource is not None else None
        length = req.content_length
        if operation is not None and operation.body is not None and length is not None and length > operation.max_body:
            raise body_too_large(operation.max_body)


class BodyValidation:
    """Middleware after authentication and the rate limit (so an anonymous caller learns nothing
    from it): the body an operation declares is read as strict JSON and converted to its type,
    which ``req.context.body`` then holds; InvalidField (422) names the first field at fault."""

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        operation = operation_of(resource, req.method) if resource is not None else None
        if operation is not None and operation.body is not None:
            if not operation.body_required and not req.content_length:
                req.context.body = None
                return
            req.context.body = validate(req.get_media(), operation.body)


def validate(value: Any, body_type: Any) -> Any:
    """``value`` as an instance of ``body_type``; InvalidField naming the first field at fault."""
    struct = get_args(body_type)[0] if get_origin(body_type) is Annotated else body_type
    names = getattr(struct, "__struct_fields__", None)
    if isinstance(value, dict) and names is not None and struct.__struct_config__.forbid_unknown_fields:
        # Named here rather than read back from msgspec's message: a client's key may hold anything.
        unknown = sorted(str(key) for key in value if key not in names)
        if unknown:
            raise InvalidField(unknown[0][:64], "is not a field of this request")
    try:
        return msgspec.convert(value, body_type)
    except msgspec.ValidationError as error:
        raise InvalidField(*field_and_problem(str(error))) from None


# msgspec's messages, read back into the field at fault and a problem that quotes nothing sent.
_AT = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_FIRST = re.compile(r"^\.?(?P<name>[A-Za-z_][A-Za-z0-9_]*)")
_MISSING = re.compile(r"^Object missing required field `(?P<name>[A-Za-z_][A-Za-z0-9_]*)`$")
_LENGTH = re.compile(r"^Expected `(?:str|array)` of length (?P<op>[<>]=?) (?P<n>\d+)$")
_BOUND = re.compile(r"^Expected `(?:int|float)` (?P<op>[<>]=?) (?P<n>-?[0-9.e+-]+)$")
_TYPE = re.compile(r"^Expected `(?P<want>[^`]+)`, got `[^`]+`$")
_NOUNS = {
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "true or false",
    "object": "a JSON object",
    "array": "an array",
    "null": "null",
}
_BOUNDS = {"<=": "at most", ">=": "at least", "<": "less than", ">": "more than"}


def field_and_problem(message: str) -> tuple[str, str]:
    """``(field, problem)`` from a msgspec ValidationError's message; the whole body is ``body``."""
    at = _AT.search(message)
    text = message[: at.start()] if at else message
    first = _FIRST.match(at["path"]) if at else None
    name = first["name"] if first else "body"
    if missing := _MISSING.match(text):
        return (f"{name}.{missing['name']}" if first else missing["name"]), "is required"
    if length := _LENGTH.match(text):
        n = int(length["n"])
        if length["op"] == ">=" and n == 1:
            return name, "must not be empty"
        return name, f"must be {_BOUNDS[length['op']]} {n} characters long"
    if bound := _BOUND.match(text):
        return name, f"must be {_BOUNDS[bound['op']]} {bound['n']}"
    if text.startswith("Expected `str` matching regex"):
        hint = next((hint for pattern, hint in PATTERN_HINTS.items() if pattern in text), None)
        return name, hint or "does not have the format /openapi.json gives"
    if text.startswith("Invalid enum value"):
        return name, "is not one of the values /openapi.json lists"
    if kind := _TYPE.match(text):
        wanted = " or ".join(_NOUNS.get(part.strip(), part.strip()) for part in kind["want"].split("|"))
        return name, f"must be {wanted}"
    return name, "is not valid"
