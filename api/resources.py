"""The HTTP resources: each declares its operations (``api.contract``), takes its validated input,
calls one ``clinic`` function and answers with a body type from ``api.bodies``."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

import falcon
import msgspec

from api import bodies
from api.auth import by, caller, owner
from api.contract import Operation, Reply
from api.openapi import openapi_document
from clinic import booking_list, bookings, idempotency, keys, lifecycle, slots
from clinic.config import Settings
from clinic.errors import InvalidField
from clinic.lifecycle import Step
from clinic.store import Booking, Commit, in_transaction

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


_BOOKING_ID = {"name": "booking_id", "in": "path", "required": True, "schema": {"type": "string"}}


def booking_json(settings: Settings, booking: Booking, *, full: bool = False, summary: bool = False) -> dict:
    """The booking as ``bodies.Booking``, ``BookingSummary`` (``summary``) or ``BookingDetail``
    (``full``), as plain JSON values."""
    return msgspec.to_builtins(booking_body(settings, booking, full=full, summary=summary))


def booking_body(settings: Settings, booking: Booking, *, full: bool = False, summary: bool = False):
    common = {
        "booking_id": booking.id,
        "status": booking.status,
        "patient": booking.patient,
        "slot": booking.slot.astimezone(settings.timezone).isoformat(),
        "doctor_id": booking.doctor_id,
    }
    if not (full or summary):
        return bodies.Booking(**common)
    common.update(
        reason=booking.reason,
        created_at=booking.created_at.isoformat(),
        updated_at=booking.updated_at.isoformat(),
        rescheduled_from=booking.rescheduled_from,
        rescheduled_to=booking.rescheduled_to,
    )
    if not full:
        return bodies.BookingSummary(**common)
    history = [
        bodies.Event(event.status, event.reason, event.at.isoformat(), event.by) for event in bookings.history(booking)
    ]
    return bodies.BookingDetail(**common, history=history)


def query(req: falcon.Request) -> dict[str, str]:
    """The query string's parameters, each given at most once."""
    params = {}
    for name, value in req.params.items():
        if isinstance(value, list):
            raise InvalidField(name[:64], "must be given once")
        params[name] = value
    return params


class Sender:
    """Sends a step after its change is committed; the database row is the record, so a broker
    that does not answer is logged and the request still succeeds."""

    def __init__(self, dispatch: Callable[[Step], object]) -> None:
        self.dispatch = dispatch

    def __call__(self, step: Step) -> None:
        try:
            self.dispatch(step)
        except Exception as error:
            logger.warning("Booking %s changed but %s not sent (%s)", step.args[0], step.stage, type(error).__name__)


class BookingCollection:
    """``POST /book``: store the request as pending, then hand it to the processor. With an
    ``Idempotency-Key`` a repeated request gets the first answer again (``Idempotent-Replayed``)."""

    scope = keys.CLIENT

    def __init__(
        self,
        settings: Settings,
        dispatch: Callable[[Step], object],
        *,
        slot_examples=None,
        commit: Commit = in_transaction,
    ) -> None:
        self.settings = settings
        self.send = Sender(dispatch)
        self.commit = commit
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
            booking = bookings.request_booking(self.settings, body, owner=caller(req), by=by(req), commit=self.commit)
            answer = idempotency.Answer(booking.id, 202, booking_json(self.settings, booking), replayed=False)
        else:
            answer = idempotency.request_booking_once(
                self.settings,
                body,
                key=key,
                owner=caller(req),
                by=by(req),
                respond=lambda b: (202, booking_json(self.settings, b)),
            )
        answer_accepted(resp, answer, self.send)


def answer_accepted(resp: falcon.Response, answer: idempotency.Answer, send: Sender) -> None:
    """202 with the new pending booking, sent to the processor unless this is a replayed answer
    (if the send fails, the sweeper sends it once the broker is back)."""
    if answer.replayed:
        resp.set_header("Idempotent-Replayed", "true")
    else:
        send(lifecycle.accepted(answer.booking_id))
    resp.status = answer.status
    resp.location = f"/booking/{answer.booking_id}"
    resp.media = answer.body


class BookingItem:
    """``GET /booking/{booking_id}``: the booking with its history (another client's is 404)."""

    scope = keys.CLIENT
    operations = {
        "get": Operation(
            "getBooking",
            "A booking with its status history",
            parameters=(_BOOKING_ID,),
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


class BookingCancel:
    """``POST /booking/{booking_id}/cancel``: cancel a pending or confirmed booking (a confirmed
    slot is free at once); cancelling again answers the booking unchanged."""

    scope = keys.CLIENT
    operations = {
        "post": Operation(
            "cancelBooking",
            "Cancel a booking",
            body=bodies.CancelRequest,
            body_required=False,
            parameters=(_BOOKING_ID,),
            replies=(
                Reply(200, "The booking, now cancelled (or cancelled before: unchanged)", bodies.BookingDetail),
                Reply(404, "No booking has that id, or it is another client's"),
                Reply(409, "The booking was rejected: it holds nothing to cancel"),
            ),
        )
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_post(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        # The cancellation's event is committed with it; the relay announces it, even if the
        # broker is down at this instant.
        body = req.get_media() if req.context.body is not None else None
        booking, _ = bookings.cancel_request(booking_id, body, owner=owner(req), by=by(req))
        resp.media = booking_json(self.settings, booking, full=True)


class BookingReschedule:
    """``POST /booking/{booking_id}/reschedule``: ask for another slot. A new pending booking goes
    through the pipeline; once it is confirmed it replaces this one, and if it is not, this one
    stays exactly as it was."""

    scope = keys.CLIENT

    def __init__(self, settings: Settings, dispatch: Callable[[Step], object], *, slot_examples=None) -> None:
        self.settings = settings
        self.send = Sender(dispatch)
        self.operations = {
            "post": Operation(
                "rescheduleBooking",
                "Move a booking to another slot",
                body=bodies.reschedule_request(settings, slot_examples=slot_examples),
                parameters=(_BOOKING_ID, _IDEMPOTENCY_KEY),
                replies=(
                    Reply(
                        202,
                        "A new pending booking (rescheduled_from names this one), decided asynchronously",
                        bodies.BookingSummary,
                        headers={
                            "Location": "/booking/{booking_id} of the new booking",
                            "Idempotent-Replayed": "`true` when this is the stored answer to an earlier request",
                        },
                    ),
                    Reply(400, "The body is not JSON the API reads (`field` is body), or Idempotency-Key is malformed"),
                    Reply(404, "No booking has that id, or it is another client's"),
                    Reply(
                        409,
                        "The booking is rejected, cancelled or already replaced; or a reschedule of it is in flight "
                        "(`booking_id` and Location name it); or a request with the same Idempotency-Key is being "
                        "handled",
                    ),
                    Reply(
                        422,
                        "A field is missing, of the wrong type or breaks a booking rule (`field` names it), "
                        "or the Idempotency-Key was used with another body (`header` names it)",
                    ),
                ),
            )
        }

    def on_post(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        key = idempotency.check_key(req.get_header(idempotency.HEADER))
        body = req.get_media()

        def respond(booking: Booking) -> tuple[int, dict]:
            return 202, booking_json(self.settings, booking, summary=True)

        if key is None:
            booking = bookings.request_reschedule(self.settings, booking_id, body, owner=owner(req), by=by(req))
            answer = idempotency.Answer(booking.id, *respond(booking), replayed=False)
        else:
            answer = idempotency.reschedule_once(
                self.settings,
                booking_id,
                body,
                key=key,
                owner=owner(req),
                caller=caller(req) or "",
                by=by(req),
                respond=respond,
            )
        answer_accepted(resp, answer, self.send)


_DAY_PARAMETER = {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}


def _doctor_parameter(settings: Settings) -> dict:
    return {
        "name": "doctor_id",
        "in": "query",
        "required": False,
        "description": "only this doctor (see GET /doctors)",
        "schema": {"type": "integer", "minimum": 1, "maximum": len(settings.doctors)},
    }


class SlotCollection:
    """``GET /slots``: the free slots of a range of days, computed from the database now."""

    scope = keys.CLIENT

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        days = f"at most {slots.MAX_DAYS} days, both included"
        self.operations = {
            "get": Operation(
                "listFreeSlots",
                "The free slots",
                description=(
                    "A slot is listed when it is in a doctor's working hours, in the future, within the booking "
                    "horizon, and no pending or confirmed booking names that doctor for it. A pending booking that "
                    "names no doctor yet holds nothing. Not cached: computed at the time of the request."
                ),
                parameters=(
                    {
                        "name": "from",
                        "in": "query",
                        "required": False,
                        "description": "first day (clinic zone); default today",
                        "schema": _DAY_PARAMETER,
                    },
                    {
                        "name": "to",
                        "in": "query",
                        "required": False,
                        "description": f"last day (clinic zone); default from + {slots.DEFAULT_DAYS - 1} days; {days}",
                        "schema": _DAY_PARAMETER,
                    },
                    _doctor_parameter(settings),
                ),
                replies=(
                    Reply(200, "The free slots, by start then doctor", bodies.FreeSlots),
                    Reply(422, "A bad date, to before from, a range too long or an unknown doctor; `field` names it"),
                ),
            )
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        found = slots.free_slots(self.settings, query(req))
        resp.cache_control = ["no-store"]
        resp.media = {"timezone": self.settings.timezone.key, "slots": [slot.as_dict() for slot in found]}


class BookingListing:
    """``GET /bookings``: a page of the client's bookings (a staff or admin key: everyone's)."""

    scope = keys.CLIENT

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        day = "(clinic zone, both included)"
        self.operations = {
            "get": Operation(
                "listBookings",
                "The bookings, page by page",
                description="A client key sees its own bookings, a staff or admin key every booking. Filters combine.",
                parameters=(
                    {
                        "name": "status",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "string", "enum": list(bookings.STATUSES)},
                    },
                    _doctor_parameter(settings),
                    {
                        "name": "from",
                        "in": "query",
                        "required": False,
                        "description": f"slots on or after this day {day}",
                        "schema": _DAY_PARAMETER,
                    },
                    {
                        "name": "to",
                        "in": "query",
                        "required": False,
                        "description": f"slots on or before this day {day}",
                        "schema": _DAY_PARAMETER,
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": booking_list.MAX_LIMIT,
                            "default": booking_list.DEFAULT_LIMIT,
                        },
                    },
                    {
                        "name": "cursor",
                        "in": "query",
                        "required": False,
                        "description": "next_cursor of the previous page, as given",
                        "schema": {"type": "string"},
                    },
                ),
                replies=(
                    Reply(200, "One page, by slot then id", bodies.BookingPage),
                    Reply(422, "A bad filter, limit or cursor; `field` names it"),
                ),
            )
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        page = booking_list.list_bookings(self.settings, query(req), owner=owner(req))
        listed = [booking_body(self.settings, booking, summary=True) for booking in page.bookings]
        resp.media = msgspec.to_builtins(bodies.BookingPage(listed, page.next_cursor))


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
