"""The read-only FHIR R4 view under ``/fhir/r4`` (``application/fhir+json``): thin resources over
``clinic.fhir``, the same keys and scoping (``api.auth.owner``) as the JSON API. Their errors are
OperationOutcomes, written by ``api.errors`` for any path under ``PREFIX``."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import falcon
import msgspec

from api.auth import owner
from api.contract import Operation, Reply
from api.errors import FHIR_PREFIX
from clinic import booking_list, bookings, fhir, keys, slots
from clinic.config import Settings
from clinic.store import utcnow

PREFIX = FHIR_PREFIX
_encoder = msgspec.json.Encoder()

#: The answers' body in /openapi.json: a FHIR resource, described loosely (fhir.resources is the judge).
Resource = dict[str, Any]


def _query(name: str, description: str, schema: dict | None = None) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema or {"type": "string"},
    }


def _path(name: str, pattern: str) -> dict:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "pattern": pattern}}


_DATE_PATTERN = (
    r"^(eq|ge|gt|le|lt)?(19|20)[0-9]{2}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])(T([01][0-9]|2[0-3]):[0-5][0-9]Z)?$"
)
_BAD_SEARCH = Reply(400, "A search parameter is unknown, repeated or not readable (`expression` names it)", Resource)
_NOT_FOUND = Reply(404, "No such resource (or another client's booking): an OperationOutcome", Resource)


def fhir_operation(operation_id: str, summary: str, *replies: Reply, parameters: tuple[dict, ...] = ()) -> Operation:
    return Operation(operation_id, summary, replies=replies, parameters=parameters, media_type=fhir.MEDIA_TYPE)


def answer(resp: falcon.Response, resource: dict) -> None:
    resp.content_type = fhir.MEDIA_TYPE
    resp.data = _encoder.encode(resource)


def base_url(req: falcon.Request) -> str:
    return req.prefix + PREFIX


def _doctor(settings: Settings, doctor_id: str) -> bookings.Doctor:
    roster = bookings.roster(settings)
    # ASCII digits only: str.isdigit() also takes "³" and other digits int() refuses.
    if not (doctor_id.isascii() and doctor_id.isdigit()) or not 1 <= int(doctor_id) <= len(roster):
        raise falcon.HTTPNotFound(description="no such resource")
    return roster[int(doctor_id) - 1]


class Metadata:
    """``GET /fhir/r4/metadata``: the CapabilityStatement, public like /openapi.json (FHIR clients
    read it before they authenticate)."""

    operations = {
        "get": fhir_operation(
            "fhirCapabilities", "FHIR CapabilityStatement", Reply(200, "What this server does", Resource)
        )
    }

    def __init__(self, settings: Settings, *, now: Callable[[], datetime] = utcnow) -> None:
        self.statement = fhir.capability_statement(settings, published=now())

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        answer(resp, self.statement)


class AppointmentItem:
    """``GET /fhir/r4/Appointment/{booking_id}``: one booking (another client's is 404)."""

    scope = keys.CLIENT
    operations = {
        "get": fhir_operation(
            "fhirReadAppointment",
            "A booking as a FHIR Appointment",
            Reply(200, "The Appointment", Resource),
            _NOT_FOUND,
            parameters=(_path("booking_id", "^[0-9a-f-]{36}$"),),
        )
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, booking_id: str) -> None:
        answer(resp, fhir.appointment(self.settings, bookings.get_booking(booking_id, owner=owner(req))))


class AppointmentSearch:
    """``GET /fhir/r4/Appointment?date=&status=&practitioner=&_count=``: a searchset Bundle of the
    key's bookings by slot then id; ``next`` carries the keyset cursor of ``GET /bookings``."""

    scope = keys.CLIENT
    operations = {
        "get": fhir_operation(
            "fhirSearchAppointments",
            "Search bookings as FHIR Appointments",
            Reply(200, "A searchset Bundle", Resource),
            _BAD_SEARCH,
            parameters=(
                _query(
                    "date",
                    "the slot's start, with a prefix eq (default), ge, gt, le, lt",
                    {"type": "string", "pattern": _DATE_PATTERN},
                ),
                _query(
                    "status", "an Appointment status", {"type": "string", "enum": ["pending", "booked", "cancelled"]}
                ),
                _query(
                    "practitioner",
                    "Practitioner/{id} or {id}",
                    {"type": "string", "pattern": "^(Practitioner/)?[1-9]$"},
                ),
                _query(
                    "_count",
                    "entries per page",
                    {"type": "integer", "minimum": 1, "maximum": fhir.MAX_COUNT, "default": fhir.DEFAULT_COUNT},
                ),
                _query("_cursor", "from the `next` link of the previous page, as given"),
            ),
        )
    }

    def __init__(self, settings: Settings, *, now: Callable[[], datetime] = utcnow) -> None:
        self.settings, self.now = settings, now

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        search = fhir.appointment_search(self.settings, req.params)
        page = booking_list.search(
            owner=owner(req),
            statuses=search.statuses,
            doctor_id=search.doctor_id,
            since=search.range.since,
            until=search.range.until,
            limit=search.count,
            cursor=search.cursor,
        )
        url = f"{base_url(req)}/Appointment"
        links = {"self": f"{url}?{req.query_string}" if req.query_string else url}
        if page.next_cursor is not None:
            params = [(k, v) for k, values in req.params.items() if k != "_cursor" for v in _listed(values)]
            links["next"] = f"{url}?{urlencode([*params, ('_cursor', page.next_cursor)])}"
        first_and_last = search.cursor is None and page.next_cursor is None
        entries = [fhir.appointment(self.settings, booking) for booking in page.bookings]
        total = len(entries) if first_and_last else None
        answer(resp, fhir.bundle(base_url(req), entries, links=links, now=self.now(), total=total))


def _listed(value: str | list[str]) -> list[str]:
    return value if isinstance(value, list) else [value]


class PractitionerItem:
    """``GET /fhir/r4/Practitioner/{doctor_id}``: a doctor of the roster."""

    scope = keys.CLIENT
    operations = {
        "get": fhir_operation(
            "fhirReadPractitioner",
            "A doctor as a FHIR Practitioner",
            Reply(200, "The Practitioner", Resource),
            _NOT_FOUND,
            parameters=(_path("doctor_id", "^[0-9]{1,9}$"),),
        )
    }

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def on_get(self, req: falcon.Request, resp: falcon.Response, doctor_id: str) -> None:
        answer(resp, fhir.practitioner(_doctor(self.settings, doctor_id)))


class ScheduleItem:
    """``GET /fhir/r4/Schedule/{doctor_id}``: the doctor's one Schedule, from now to the horizon."""

    scope = keys.CLIENT
    operations = {
        "get": fhir_operation(
            "fhirReadSchedule",
            "A doctor's FHIR Schedule",
            Reply(200, "The Schedule", Resource),
            _NOT_FOUND,
            parameters=(_path("doctor_id", "^[0-9]{1,9}$"),),
        )
    }

    def __init__(self, settings: Settings, *, now: Callable[[], datetime] = utcnow) -> None:
        self.settings, self.now = settings, now

    def on_get(self, req: falcon.Request, resp: falcon.Response, doctor_id: str) -> None:
        answer(resp, fhir.schedule(self.settings, _doctor(self.settings, doctor_id), now=self.now()))


class SlotSearch:
    """``GET /fhir/r4/Slot?schedule=&start=&status=free``: the free-slot search as a Bundle."""

    scope = keys.CLIENT
    operations = {
        "get": fhir_operation(
            "fhirSearchSlots",
            "Search free slots as FHIR Slots",
            Reply(200, "A searchset Bundle of free slots", Resource),
            _BAD_SEARCH,
            parameters=(
                _query("schedule", "Schedule/{id} or {id}", {"type": "string", "pattern": "^(Schedule/)?[1-9]$"}),
                _query(
                    "start",
                    "the slot's start, with a prefix eq (default), ge, gt, le, lt; default the coming week, "
                    f"at most {slots.MAX_DAYS} days",
                    {"type": "string", "pattern": _DATE_PATTERN},
                ),
                _query("status", "only free slots are listed", {"type": "string", "enum": ["free"]}),
            ),
        )
    }

    def __init__(self, settings: Settings, *, now: Callable[[], datetime] = utcnow) -> None:
        self.settings, self.now = settings, now

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        instant = self.now()
        search = fhir.slot_search(self.settings, req.params, now=instant)
        found = slots.free_slots(self.settings, search.params, now=lambda: instant) if search.free else []
        entries = [fhir.slot(free) for free in found if fhir.in_range(search.range, free.start)]
        url = f"{base_url(req)}/Slot"
        links = {"self": f"{url}?{req.query_string}" if req.query_string else url}
        answer(resp, fhir.bundle(base_url(req), entries, links=links, now=instant, total=len(entries)))


def routes(settings: Settings) -> dict[str, object]:
    return {
        PREFIX + "/metadata": Metadata(settings),
        PREFIX + "/Appointment": AppointmentSearch(settings),
        PREFIX + "/Appointment/{booking_id}": AppointmentItem(settings),
        PREFIX + "/Practitioner/{doctor_id}": PractitionerItem(settings),
        PREFIX + "/Schedule/{doctor_id}": ScheduleItem(settings),
        PREFIX + "/Slot": SlotSearch(settings),
    }
