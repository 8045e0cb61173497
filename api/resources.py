"""The HTTP resources: each parses its input, calls one ``clinic`` function and answers."""

from __future__ import annotations

import logging
from collections.abc import Callable

import falcon

from api.auth import owner
from api.errors import body_too_large
from clinic import bookings, idempotency
from clinic.config import MAX_REQUEST_BODY_BYTES, Settings
from clinic.store import Booking

logger = logging.getLogger(__name__)


def max_body(limit: int):
    def hook(req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        length = req.content_length
        if length is not None and length > limit:
            raise body_too_large(limit)

    return hook


def booking_json(settings: Settings, booking: Booking, *, full: bool = False) -> dict:
    body = {
        "booking_id": booking.id,
        "status": booking.status,
        "patient": booking.patient,
        "slot": booking.slot.astimezone(settings.timezone).isoformat(),
        "doctor_id": booking.doctor_id,
    }
    if full:
        body.update(
            reason=booking.reason,
            created_at=booking.created_at.isoformat(),
            updated_at=booking.updated_at.isoformat(),
            history=[
                {"status": event.status, "reason": event.reason, "at": event.at.isoformat()}
                for event in bookings.history(booking)
            ],
        )
    return body


class BookingCollection:
    """``POST /book``: store the request as pending, then hand it to the processor. With an
    ``Idempotency-Key`` a repeated request gets the first answer again (``Idempotent-Replayed``)."""

    scope = "client"

    def __init__(self, settings: Settings, dispatch: Callable[[str], None]) -> None:
        self.settings = settings
        self.dispatch = dispatch

    @falcon.before(max_body(MAX_REQUEST_BODY_BYTES))
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        key = idempotency.check_key(req.get_header(idempotency.HEADER))
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

    scope = "client"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        resp.media = booking_json(self.settings, bookings.get_booking(booking_id, owner=owner(req)), full=True)


class DoctorCollection:
    """``GET /doctors``: the roster."""

    def __init__(self, settings: Settings) -> None:
        self.doctors = [{"id": d.id, "name": d.name} for d in bookings.roster(settings)]

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = {"doctors": self.doctors}


class Health:
    """``GET /health``: 200 when the database and the broker answer, 503 naming what does not."""

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
        resp.media = {"status": "unavailable" if failing else "ok", "failing": failing, "checks": results}


class OpenAPIDocument:
    def __init__(self, document: dict) -> None:
        self.document = document

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = self.document
