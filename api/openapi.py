"""The OpenAPI 3 description of the API, served at ``/openapi.json`` and fuzzed by the tests."""

from __future__ import annotations

from clinic.bookings import PATIENT_MAX_LENGTH
from clinic.config import Settings

_ERROR = {
    "type": "object",
    "required": ["title"],
    "properties": {
        "title": {"type": "string"},
        "description": {"type": "string"},
        "field": {"type": "string", "description": "the request field that is wrong (422 only)"},
    },
}


def _error(description: str) -> dict:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


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
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BookingRequest"}}},
                    },
                    "responses": {
                        "202": {
                            "description": "Accepted as pending; the outcome is decided asynchronously",
                            "headers": {
                                "Location": {"schema": {"type": "string"}, "description": "/booking/{booking_id}"}
                            },
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Booking"}}},
                        },
                        "400": _error("The body is not valid JSON, or is empty"),
                        "413": _error("The body is larger than 64 KiB"),
                        "415": _error("The body is not application/json"),
                        "422": _error(
                            "A field is missing, of the wrong type or breaks a booking rule; `field` names it"
                        ),
                    },
                }
            },
            "/booking/{booking_id}": {
                "get": {
                    "summary": "A booking with its status history",
                    "operationId": "getBooking",
                    "parameters": [
                        {"name": "booking_id", "in": "path", "required": True, "schema": {"type": "string"}}
                    ],
                    "responses": {
                        "200": {
                            "description": "The booking",
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/BookingDetail"}}},
                        },
                        "404": _error("No booking has that id"),
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
                                "'YYYY-MM-DD HH:MM' in the clinic's zone, or ISO 8601 with an offset; in the future, "
                                f"on the {settings.slot_minutes}-minute grid, at most {settings.horizon_days} days ahead"
                            ),
                            "examples": ["2026-12-14 10:30", "2026-12-14T10:30:00+01:00"],
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
                "Error": _ERROR,
            }
        },
    }
