"""The HTTP resources: each declares its operations (``api.contract``), takes its validated input,
calls one ``clinic`` function and answers with a body type from ``api.bodies``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import falcon
import msgspec

from api import bodies
from api.auth import owner
from api.contract import Operation, Reply
from api.openapi import openapi_document
from clinic import bookings, idempotency, keys
from clinic.config import Settings
from clinic.store import Booking

logger = logging.getLogger(__name__)

_IDEMPOTENCY_KEY = {
    "name": idempotency.HEADER,
    "in": "header",
    "required": False,
    "description": (
        "Makes the request safe to repeat for 24 hours: the same key with the same body answers the first "
        "booking again (with `Idempotent-Replayed: true`), with another body 422, while the first is still "
        "being stored 409"
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": idempotency.KEY_MAX_LENGTH, "pattern": "^[!-~]+$"},
}


def booking_json(settings: Settings, booking: Booking, *, full: bool = False) -> dict:
    """The booking as ``bodies.Booking`` (or ``BookingDetail`` with ``full``), as plain JSON values."""
    common = {
        "booking_id": booking.id,
        "status": booking.status,
        "patient": booking.patient,
        "slot": booking.slot.astimezone(settings.timezone).isoformat(),
        "doctor_id": booking.doctor_id,
    }
    if not full:
        return msgspec.to_builtins(bodies.Booking(**common))
    history = [bodies.Event(event.status, event.reason, event.at.isoformat()) for event in bookings.history(booking)]
    detail = bodies.BookingDetail(
        **common,
        reason=booking.reason,
        created_at=booking.created_at.isoformat(),
        updated_at=booking.updated_at.isoformat(),
        history=history,
    )
    return msgspec.to_builtins(detail)


class BookingCollection:
    """``POST /book``: store the request as pending, then hand it to the processor. With an
    ``Idempotency-Key`` a repeated request gets the first answer again (``Idempotent-Replayed``)."""

    scope = keys.CLIENT

    def __init__(self, settings: Settings, dispatch: Callable[[str], None], *, slot_examples=None) -> None:
        self.settings = settings
        self.dispatch = dispatch
        self.operations = {
            "post": Operation(
                "requestBooking",
                "Request a booking",
                body=bodies.booking_request(settings, slot_examples=slot_examples),
                parameters=(_IDEMPOTENCY_KEY,),
                replies=(
                    Reply(
                        202,
                        "Accepted as pending; the outcome is decided asynchronously",
                        bodies.Booking,
                        headers={
                            "Location": "/booking/{booking_id}",
                            "Idempotent-Replayed": "`true` when this is the stored answer to an earlier request",
                        },
                    ),
                    Reply(400, "The body is not JSON the API reads (`field` is body), or Idempotency-Key is malformed"),
                    Reply(409, "A request with the same Idempotency-Key is being handled; ask again"),
                    Reply(
                        422,
                        "A field is missing, of the wrong type or breaks a booking rule (`field` names it), "
                        "or the Idempotency-Key was used with another body (`header` names it)",
                    ),
                ),
            )
        }

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        key = idempotency.check_key(req.get_header(idempotency.HEADER))
        # The body as sent (its shape checked by the contract): the booking rules read it, and an
        # idempotent request is recognised by it.
        body = req.get_media()
        if key is None:
            booking = bookings.request_booking(self.settings, body, owner=owner(req))
            answer = idempotency.Answer(booking.id, 202, booking_json(self.settings, booking), replayed=False)
        else:
            answer = idempotency.request_booking_once(
                self.settings, body, key=key, owner=owner(req), respond=lambda b: (202, booking_json(self.settings, b))
            )
        if answer.replayed:
            resp.set_header("Idempotent-Replayed", "true")
        else:
            self._send(answer.booking_id)
        resp.status = answer.status
        resp.location = f"/booking/{answer.booking_id}"
        resp.media = answer.body

    def _send(self, booking_id: str) -> None:
        try:
            self.dispatch(booking_id)
        except Exception as error:  # the row is the record: the sweeper sends it once the broker is back
            logger.warning(
                "Booking %s stored but not sent (%s); the sweeper will send it", booking_id, type(error).__name__
            )


class BookingItem:
    """``GET /booking/{booking_id}``: the booking with its history (another client's is 404)."""

    scope = keys.CLIENT
    operations = {
        "get": Operation(
            "getBooking",
            "A booking with its status history",
            parameters=({"name": "booking_id", "in": "path", "required": True, "schema": {"type": "string"}},),
            replies=(
                Reply(200, "The booking", bodies.BookingDetail),
                Reply(404, "No booking has that id, or it is another client's"),
            ),
        )
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        resp.media = booking_json(self.settings, bookings.get_booking(booking_id, owner=owner(req)), full=True)


class DoctorCollection:
    """``GET /doctors``: the roster."""

    operations = {
        "get": Operation("listDoctors", "The clinic's doctors", replies=(Reply(200, "The roster", bodies.Roster),))
    }

    def __init__(self, settings: Settings) -> None:
        self.roster = msgspec.to_builtins(bodies.Roster(bookings.roster(settings)))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.roster


class Health:
    """``GET /health``: 200 when the database and the broker answer, 503 naming what does not."""

    operations = {
        "get": Operation(
            "health",
            "Whether the database and the broker answer",
            replies=(
                Reply(200, "Both answer", bodies.Health),
                Reply(503, "One does not; `failing` names it", bodies.Health),
            ),
        )
    }

    def __init__(self, checks: dict[str, Callable[[], None]]) -> None:
        self.checks = checks

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        results = {}
        for name, check in self.checks.items():
            try:
                check()
                results[name] = "ok"
            except Exception as error:
                results[name] = f"unavailable ({type(error).__name__})"
        failing = [name for name, result in results.items() if result != "ok"]
        resp.status = falcon.HTTP_503 if failing else falcon.HTTP_200
        health = bodies.Health("unavailable" if failing else "ok", failing, results)
        resp.media = msgspec.to_builtins(health)


class OpenAPIDocument:
    """``GET /openapi.json``: the document, built once from the routes it describes."""

    operations = {"get": Operation("openapi", "This document", replies=(Reply(200, "OpenAPI 3.1", dict[str, Any]),))}

    def __init__(self, settings: Settings, routes: Mapping[str, object]) -> None:
        self.document = openapi_document(settings, {**routes, "/openapi.json": self})

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.document
