"""The OpenAPI 3.1 document, generated from the routes' ``Operation`` objects and the msgspec types
that also validate the bodies; served at ``/openapi.json`` and fuzzed by the tests."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec

from api.bodies import Problem
from api.contract import Operation, Reply
from api.errors import PROBLEM_JSON
from clinic import keys
from clinic.config import Settings

_REF = "#/components/schemas/{name}"

# Answers every operation of a kind gives, so an endpoint declares only its own.
_BODY_ERRORS = (
    Reply(400, "The body is not JSON the API reads (empty, invalid UTF-8 or JSON, duplicate keys); `field` is body"),
    Reply(413, "The body is too large"),
    Reply(415, "The body is not application/json"),
    Reply(422, "A field is missing, of the wrong type or breaks a rule; `field` names it"),
)
_UNAUTHORIZED = Reply(401, "No valid key of the needed scope", headers={"WWW-Authenticate": "`Bearer realm=...`"})
_RATE_LIMITED = Reply(429, "Too many requests with this key; ask again after Retry-After", headers={"Retry-After": ""})
_SCHEMES = {
    keys.CLIENT: {
        "type": "http",
        "scheme": "bearer",
        "description": "A client key (`clinic keys create --scope client`); a booking belongs to the key that made it.",
    },
    keys.STAFF: {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "A staff key (`clinic keys create --scope staff`), for the front desk: books, sees, cancels and "
            "reschedules every booking."
        ),
    },
    keys.ADMIN: {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "An admin key (`clinic keys create --scope admin`): everything a staff key may do, and every "
            "/admin path and /metrics."
        ),
    },
}
_SCHEME_NAMES = {keys.CLIENT: "clientKey", keys.STAFF: "staffKey", keys.ADMIN: "adminKey"}


def example_slots(settings: Settings, now: datetime | None = None) -> list[str]:
    """Two spellings of a slot a client could book now: the first opening of a working day about a
    week ahead (so the document's examples never go stale while the server runs)."""
    today = (now or datetime.now(settings.timezone)).astimezone(settings.timezone).date()
    grid = settings.slot_minutes
    for offset in range(min(7, settings.horizon_days - 1), settings.horizon_days):
        day = today + timedelta(days=max(offset, 1))
        for period in settings.hours.periods:
            start = -(-period.opens // grid) * grid
            local = datetime(day.year, day.month, day.day, start // 60, start % 60, tzinfo=settings.timezone)
            if period.weekday == day.weekday() and settings.hours.covers(local, grid):
                return [local.strftime("%Y-%m-%d %H:%M"), local.isoformat(timespec="minutes")]
    return []


def openapi_document(settings: Settings, routes: Mapping[str, object]) -> dict:
    """The document of ``routes`` (path -> resource) as this server runs: its access mode decides
    whether the booking endpoints' security is optional, its rate limit whether 429 is an answer."""
    types: list[Any] = [Problem]
    for resource in routes.values():
        for operation in resource.operations.values():
            types.extend(t for t in (operation.body, *(reply.body for reply in operation.replies)) if t is not None)
    inline, components = msgspec.json.schema_components(types, ref_template=_REF)
    schema_of = {id(t): schema for t, schema in zip(types, inline, strict=True)}

    paths: dict[str, dict] = {}
    for path, resource in routes.items():
        scope = getattr(resource, "scope", None)
        for method, operation in resource.operations.items():
            paths.setdefault(path, {})[method] = _operation(operation, scope, settings, schema_of)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Clinic booking API",
            "version": "1.0.0",
            "description": (
                "Book medical appointments. A booking is accepted at once as pending and decided "
                "asynchronously; poll GET /booking/{booking_id} or subscribe to notifications. "
                "Every error is an RFC 9457 problem (application/problem+json)."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {_SCHEME_NAMES[scope]: scheme for scope, scheme in _SCHEMES.items()},
        },
    }


def _operation(operation: Operation, scope: str | None, settings: Settings, schema_of: dict) -> dict:
    replies = list(operation.replies)
    if operation.body is not None:
        replies += _BODY_ERRORS
    if scope is not None:
        replies.append(_UNAUTHORIZED)
        if settings.rate_limit is not None:
            replies.append(_RATE_LIMITED)
    described: dict[str, Any] = {"operationId": operation.operation_id, "summary": operation.summary}
    if operation.description:
        described["description"] = operation.description
    if scope is not None:
        # Any key whose scope grants the operation's: a staff or admin key books for anyone.
        required = [{_SCHEME_NAMES[granted]: []} for granted in keys.GRANTED_BY[scope]]
        # In open mode (development) a client key is optional: one that is sent is still checked.
        described["security"] = required + [{}] if scope == keys.CLIENT and settings.open_access else required
    if operation.parameters:
        described["parameters"] = list(operation.parameters)
    if operation.body is not None:
        content = {"application/json": {"schema": schema_of[id(operation.body)]}}
        described["requestBody"] = {"required": operation.body_required, "content": content}
    described["responses"] = {}
    for reply in replies:
        described["responses"].setdefault(str(reply.status), _reply(reply, schema_of, operation.media_type))
    return described


def _reply(reply: Reply, schema_of: dict, media_type: str = "application/json") -> dict:
    answer: dict[str, Any] = {"description": reply.description}
    if reply.headers:
        answer["headers"] = {
            name: {"schema": {"type": "string"}, **({"description": text} if text else {})}
            for name, text in reply.headers.items()
        }
    if reply.body is not None:
        # The reply's own type (the desk's HTML, the metrics' text) or else the operation's (FHIR's JSON).
        own = reply.media_type if reply.media_type != "application/json" else media_type
        answer["content"] = {own: {"schema": schema_of[id(reply.body)]}}
    elif reply.status >= 400 and media_type != "application/json":  # e.g. FHIR's OperationOutcome
        answer["content"] = {media_type: {"schema": {"type": "object"}}}
    elif reply.status >= 400:
        answer["content"] = {PROBLEM_JSON: {"schema": schema_of[id(Problem)]}}
    return answer
