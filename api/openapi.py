"""The OpenAPI 3 description of the API, served at ``/openapi.json`` and fuzzed by the tests."""

from __future__ import annotations

from datetime import datetime, timedelta

from clinic.bookings import PATIENT_MAX_LENGTH
from clinic.broker.deadletters import RETENTION_DAYS
from clinic.config import MAX_REQUEST_BODY_BYTES, STAGES, Settings
from clinic.idempotency import KEY_MAX_LENGTH

_ERROR = {
    "type": "object",
    "required": ["title"],
    "properties": {
        "title": {"type": "string"},
        "description": {"type": "string"},
        "field": {"type": "string", "description": "the request field that is wrong (`body` for unreadable JSON)"},
        "header": {"type": "string", "description": "the request header that is wrong"},
    },
}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


_UNAUTHORIZED = {
    "description": "No valid key of the needed scope; `WWW-Authenticate: Bearer` says so",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_UNAVAILABLE = {
    "description": "RabbitMQ does not answer; ask again after `Retry-After` seconds",
    "headers": {"Retry-After": {"schema": {"type": "string"}}},
    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
}
_JSON_BODY_ERRORS = {
    "400": _error("The body is not JSON the API reads (empty, invalid UTF-8 or JSON, duplicate keys); `field` is body"),
    "413": _error(f"The body is larger than {MAX_REQUEST_BODY_BYTES // 1024} KiB"),
    "415": _error("The body is not application/json"),
}
_CLIENT = [{"clientKey": []}]
_ADMIN = [{"adminKey": []}]

_DEAD_LETTER = {
    "type": "object",
    "required": ["queue", "message_id", "actor", "booking_id", "retries", "error", "enqueued_at"],
    "properties": {
        "queue": {"type": "string", "description": "the dead-letter queue, `{namespace}.{stage}.XQ`"},
        "message_id": {"type": "string"},
        "actor": {"type": "string"},
        "booking_id": {"type": ["string", "null"]},
        "retries": {"type": "integer"},
        "error": {"type": "string", "description": "the class of the last error (never its message)"},
        "enqueued_at": {"type": ["string", "null"], "format": "date-time"},
    },
}


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
                return [local.strftime("%Y-%m-%d %H:%M"), local.isoformat()]
    return []


def openapi_document(settings: Settings) -> dict:
    booking_properties = {
        "booking_id": {"type": "string", "format": "uuid"},
        "status": {"type": "string", "enum": ["pending", "confirmed", "rejected"]},
        "patient": {"type": "string"},
        "slot": {"type": "string", "description": "ISO 8601 in the clinic's zone, with its offset"},
        "doctor_id": {"type": ["integer", "null"]},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Clinic booking API",
            "version": "1.0.0",
            "description": (
                "Book medical appointments. A booking is accepted at once as pending and decided "
                "asynchronously; poll GET /booking/{booking_id} or subscribe to notifications."
            ),
        },
        "paths": {
            "/book": {
                "post": {
                    "summary": "Request a booking",
                    "operationId": "requestBooking",
                    "security": _CLIENT,
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "description": (
                                "Makes the request safe to repeat for 24 hours: the same key with the same body "
                                "answers the first booking again (with `Idempotent-Replayed: true`), with another "
                                "body 422, while the first is still being stored 409"
                            ),
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": KEY_MAX_LENGTH,
                                "pattern": "^[!-~]+$",
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BookingRequest"}}},
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted as pending; the outcome is decided asynchronously",
                            "headers": {
                                "Location": {"schema": {"type": "string"}, "description": "/booking/{booking_id}"},
                                "Idempotent-Replayed": {
                                    "schema": {"type": "string", "enum": ["true"]},
                                    "description": "present when this is the stored answer to an earlier request",
                                },
                            },
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Booking"}}},
                        },
                        **_JSON_BODY_ERRORS,
                        "401": _UNAUTHORIZED,
                        "409": _error("A request with the same Idempotency-Key is being handled; ask again"),
                        "422": _error(
                            "A field is missing, of the wrong type or breaks a booking rule (`field` names it), "
                            "or the Idempotency-Key was used with another body (`header` names it)"
                        ),
                    },
                }
            },
            "/booking/{booking_id}": {
                "get": {
                    "summary": "A booking with its status history",
                    "operationId": "getBooking",
                    "security": _CLIENT,
                    "parameters": [
                        {"name": "booking_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The booking",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BookingDetail"}}},
                        },
                        "401": _UNAUTHORIZED,
                        "404": _error("No booking has that id, or it is another client's"),
                    },
                }
            },
            "/doctors": {
                "get": {
                    "summary": "The clinic's doctors",
                    "operationId": "listDoctors",
                    "responses": {
                        "200": {
                            "description": "The roster",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Roster"}}},
                        }
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Whether the database and the broker answer",
                    "operationId": "health",
                    "responses": {
                        "200": {
                            "description": "Both answer",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                        },
                        "503": {
                            "description": "One does not; `failing` names it",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Health"}}},
                        },
                    },
                }
            },
            "/admin/dead-letters": {
                "get": {
                    "summary": "The dead letters, left where they are",
                    "description": f"Dramatiq keeps a dead letter for {RETENTION_DAYS} days.",
                    "operationId": "listDeadLetters",
                    "security": _ADMIN,
                    "parameters": [
                        {
                            "name": "queue",
                            "in": "query",
                            "required": False,
                            "description": "only this stage's dead letters (default: every stage)",
                            "schema": {"type": "string", "enum": list(STAGES)},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "What sits in every `{namespace}.{stage}.XQ`",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/DeadLetterList"}}
                            },
                        },
                        "401": _UNAUTHORIZED,
                        "422": _error("`queue` is not a stage; `field` names it"),
                        "503": _UNAVAILABLE,
                    },
                }
            },
            "/admin/dead-letters/replay": {
                "post": {
                    "summary": "Send dead letters back to their queue, retry count reset",
                    "operationId": "replayDeadLetters",
                    "security": _ADMIN,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ReplayRequest"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "The dead letters sent back",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Replayed"}}},
                        },
                        **_JSON_BODY_ERRORS,
                        "401": _UNAUTHORIZED,
                        "404": _error("No dead letter has that message id"),
                        "422": _error("A field is wrong, or neither or both of message_id and all are given"),
                        "503": _UNAVAILABLE,
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "summary": "This document",
                    "operationId": "openapi",
                    "responses": {
                        "200": {
                            "description": "OpenAPI 3.1",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        }
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "BookingRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["patient", "slot"],
                    "properties": {
                        "patient": {"type": "string", "minLength": 1, "maxLength": PATIENT_MAX_LENGTH},
                        "slot": {
                            "type": "string",
                            "description": (
                                "'YYYY-MM-DD HH:MM' in the clinic's zone, or ISO 8601 with an offset; in the "
                                f"future, on the {settings.slot_minutes}-minute grid, "
                                f"at most {settings.horizon_days} days ahead"
                            ),
                            **({"examples": examples} if (examples := example_slots(settings)) else {}),
                        },
                        "doctor_id": {
                            "type": ["integer", "null"],
                            "minimum": 1,
                            "maximum": len(settings.doctors),
                            "description": "a doctor from GET /doctors; omitted: the first doctor free at that slot",
                        },
                    },
                },
                "Booking": {"type": "object", "required": list(booking_properties), "properties": booking_properties},
                "BookingDetail": {
                    "type": "object",
                    "required": [*booking_properties, "reason", "created_at", "updated_at", "history"],
                    "properties": {
                        **booking_properties,
                        "reason": {"type": ["string", "null"]},
                        "created_at": {"type": "string", "format": "date-time"},
                        "updated_at": {"type": "string", "format": "date-time"},
                        "history": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["status", "at"],
                                "properties": {
                                    "status": {"type": "string"},
                                    "reason": {"type": ["string", "null"]},
                                    "at": {"type": "string", "format": "date-time"},
                                },
                            },
                        },
                    },
                },
                "Roster": {
                    "type": "object",
                    "required": ["doctors"],
                    "properties": {
                        "doctors": {
                            "type": "array",
                            "items": {
                                "type": "object",
                                "required": ["id", "name"],
                                "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
                            },
                        }
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "failing", "checks"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ok", "unavailable"]},
                        "failing": {"type": "array", "items": {"type": "string", "enum": ["database", "broker"]}},
                        "checks": {"type": "object", "additionalProperties": {"type": "string"}},
                    },
                },
                "DeadLetter": _DEAD_LETTER,
                "DeadLetterList": {
                    "type": "object",
                    "required": ["dead_letters", "count", "retention_days"],
                    "properties": {
                        "dead_letters": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"}},
                        "count": {"type": "integer"},
                        "retention_days": {"type": "integer"},
                    },
                },
                "ReplayRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        "queue": {"type": "string", "enum": list(STAGES)},
                        "message_id": {"type": "string", "minLength": 1, "maxLength": 64},
                        "all": {"type": "boolean"},
                    },
                    "oneOf": [
                        {"required": ["message_id"], "not": {"required": ["all"]}},
                        {
                            "required": ["all"],
                            "not": {"required": ["message_id"]},
                            "properties": {"all": {"const": True}},
                        },
                    ],
                },
                "Replayed": {
                    "type": "object",
                    "required": ["replayed", "count"],
                    "properties": {
                        "replayed": {"type": "array", "items": {"$ref": "#/components/schemas/DeadLetter"}},
                        "count": {"type": "integer"},
                    },
                },
                "Error": _ERROR,
            },
            "securitySchemes": {
                "clientKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": (
                        "A client key from `clinic keys create --scope client`; a booking belongs to the key that "
                        "made it. While no client key exists (local development) the booking endpoints are open."
                    ),
                },
                "adminKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An admin key from `clinic keys create --scope admin`; every /admin path needs one.",
                },
            },
        },
    }
