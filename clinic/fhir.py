"""The FHIR R4 view of the clinic, as plain JSON values: a booking is an Appointment, a doctor a
Practitioner with one Schedule, a free slot a Slot; and the rules that read FHIR search parameters
into the clinic's own queries. Pure functions: no database, no HTTP.

Status mapping (ours -> FHIR): pending -> ``pending`` (the practitioner ``needs-action``),
confirmed -> ``booked``, rejected and cancelled -> ``cancelled`` with ``cancelationReason``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from clinic.bookings import CANCELLED, CONFIRMED, PENDING, REJECTED, Doctor
from clinic.config import Settings
from clinic.errors import InvalidField
from clinic.schedule import whole_number
from clinic.slots import MAX_DAYS, FreeSlot
from clinic.store import Booking

FHIR_VERSION = "4.0.1"
MEDIA_TYPE = "application/fhir+json"
BOOKING_SYSTEM = "urn:clinic:booking"
DEFAULT_COUNT = 50
MAX_COUNT = 200
#: Our status -> (Appointment.status, the patient's participant status, the practitioner's).
_STATUS = {
    PENDING: ("pending", "accepted", "needs-action"),
    CONFIRMED: ("booked", "accepted", "accepted"),
    REJECTED: ("cancelled", "accepted", "declined"),
    CANCELLED: ("cancelled", "declined", "accepted"),
}
#: Appointment.status codes of R4, and which of our statuses each stands for (most stand for none).
APPOINTMENT_STATUSES = (
    "proposed",
    "pending",
    "booked",
    "arrived",
    "fulfilled",
    "cancelled",
    "noshow",
    "entered-in-error",
    "checked-in",
    "waitlist",
)
SLOT_STATUSES = ("busy", "free", "busy-unavailable", "busy-tentative", "entered-in-error")
APPOINTMENT_PARAMETERS = ("date", "status", "practitioner", "_count", "_cursor")
SLOT_PARAMETERS = ("schedule", "start", "status")
PREFIXES = ("eq", "ge", "le", "gt", "lt")
_DATE = re.compile(
    r"^(?P<prefix>[a-z]{2})?(?P<value>\d{4}-\d{2}-\d{2}"
    r"(?:T\d{2}:\d{2}(?P<seconds>:\d{2}(?P<fraction>\.\d{1,6})?)?(?:Z|[+-]\d{2}:\d{2})?)?)$"
)
_REFERENCE = re.compile(r"^(?:(?P<type>[A-Za-z]+)/)?(?P<id>[0-9]{1,9})$")


def our_statuses(fhir_status: str) -> tuple[str, ...]:
    """The booking statuses a FHIR Appointment.status stands for (none for most codes)."""
    return tuple(ours for ours, (code, _, _) in _STATUS.items() if code == fhir_status)


def instant(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def appointment(settings: Settings, booking: Booking) -> dict:
    """The booking as an R4 Appointment: the patient by name only (the booking's own data, as the
    JSON API gives it), the doctor as ``Practitioner/{id}`` once one is set."""
    status, patient_status, doctor_status = _STATUS[booking.status]
    start = booking.slot.astimezone(UTC)
    participants = [{"actor": {"display": booking.patient}, "required": "required", "status": patient_status}]
    if booking.doctor_id is not None:
        participants.append(
            {
                "actor": {"reference": f"Practitioner/{booking.doctor_id}"},
                "required": "required",
                "status": doctor_status,
            }
        )
    resource = {
        "resourceType": "Appointment",
        "id": booking.id,
        "meta": {"lastUpdated": instant(booking.updated_at)},
        "identifier": [{"system": BOOKING_SYSTEM, "value": booking.id}],
        "status": status,
        "start": instant(start),
        "end": instant(start + timedelta(minutes=settings.slot_minutes)),
        "minutesDuration": settings.slot_minutes,
        "created": instant(booking.created_at),
        "participant": participants,
    }
    if status == "cancelled":
        resource["cancelationReason"] = {"text": booking.reason or booking.status}
    return resource


def practitioner(doctor: Doctor) -> dict:
    return {"resourceType": "Practitioner", "id": str(doctor.id), "active": True, "name": [{"text": doctor.name}]}


def schedule(settings: Settings, doctor: Doctor, *, now: datetime) -> dict:
    """The doctor's one Schedule: bookable from now to the booking horizon."""
    return {
        "resourceType": "Schedule",
        "id": str(doctor.id),
        "active": True,
        "actor": [{"reference": f"Practitioner/{doctor.id}", "display": doctor.name}],
        "planningHorizon": {"start": instant(now), "end": instant(now + timedelta(days=settings.horizon_days))},
        "comment": f"Working hours {settings.hours.text} ({settings.timezone.key})",
    }


def slot_id(free: FreeSlot) -> str:
    """Deterministic: the doctor and the start in UTC, e.g. ``1-202612141030``."""
    return f"{free.doctor_id}-{free.start.astimezone(UTC):%Y%m%d%H%M}"


def slot(free: FreeSlot) -> dict:
    return {
        "resourceType": "Slot",
        "id": slot_id(free),
        "schedule": {"reference": f"Schedule/{free.doctor_id}"},
        "status": "free",
        "start": instant(free.start),
        "end": instant(free.end),
    }


def bundle(
    base: str, entries: Iterable[dict], *, links: Mapping[str, str], now: datetime, total: int | None = None
) -> dict:
    """A searchset Bundle of ``entries`` (resources), each with its full URL under ``base``;
    ``total`` only when it is known (a keyset page does not know it)."""
    listed = [
        {"fullUrl": f"{base}/{r['resourceType']}/{r['id']}", "resource": r, "search": {"mode": "match"}}
        for r in entries
    ]
    answer = {"resourceType": "Bundle", "type": "searchset", "timestamp": instant(now)}
    if total is not None:
        answer["total"] = total
    answer["link"] = [{"relation": relation, "url": url} for relation, url in links.items()]
    if listed:  # FHIR JSON has no empty arrays
        answer["entry"] = listed
    return answer


#: HTTP status -> OperationOutcome.issue.code
_ISSUE_CODES = {400: "invalid", 401: "login", 403: "forbidden", 404: "not-found", 405: "not-supported"}
_ISSUE_CODES.update({408: "timeout", 413: "too-costly", 429: "throttled", 503: "transient"})


def operation_outcome(status: int, diagnostics: str, *, expression: str | None = None) -> dict:
    issue = {
        "severity": "error",
        "code": _ISSUE_CODES.get(status, "invalid" if status < 500 else "exception"),
        "diagnostics": diagnostics,
    }
    if expression is not None:
        issue["expression"] = [expression]
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def capability_statement(settings: Settings, *, published: datetime) -> dict:
    """What this server answers under ``/fhir/r4``: reads and searches, JSON only."""

    def search(name: str, kind: str, doc: str) -> dict:
        return {"name": name, "type": kind, "documentation": doc}

    return {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": instant(published),
        "kind": "instance",
        "software": {"name": "clinic booking backend"},
        "implementation": {"description": "A read-only FHIR R4 view of the clinic's bookings, doctors and slots"},
        "fhirVersion": FHIR_VERSION,
        "format": [MEDIA_TYPE, "json"],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "description": "Appointment, Practitioner, Schedule and Slot need a client key "
                    "(Authorization: Bearer ck_...); a client key sees its own bookings only."
                },
                "resource": [
                    {
                        "type": "Appointment",
                        "interaction": [{"code": "read"}, {"code": "search-type"}],
                        "searchParam": [
                            search("date", "date", "the slot's start; prefixes eq, ge, le, gt, lt; repeatable"),
                            search("status", "token", "pending, booked or cancelled; a comma-separated list"),
                            search("practitioner", "reference", "Practitioner/{id} or {id}"),
                            search("_count", "number", f"1-{MAX_COUNT}, default {DEFAULT_COUNT}"),
                        ],
                    },
                    {"type": "Practitioner", "interaction": [{"code": "read"}]},
                    {"type": "Schedule", "interaction": [{"code": "read"}]},
                    {
                        "type": "Slot",
                        "interaction": [{"code": "search-type"}],
                        "searchParam": [
                            search("schedule", "reference", "Schedule/{id} or {id}"),
                            search("start", "date", f"prefixes eq, ge, le, gt, lt; at most {MAX_DAYS} days"),
                            search("status", "token", "free (this server lists no busy slot)"),
                        ],
                    },
                ],
            }
        ],
    }


# Search parameters -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    """Instants ``[since, until)``, either end open (None)."""

    since: datetime | None = None
    until: datetime | None = None

    def narrowed(self, since: datetime | None, until: datetime | None) -> Range:
        low = max((t for t in (self.since, since) if t is not None), default=None)
        high = min((t for t in (self.until, until) if t is not None), default=None)
        return Range(low, high)


def date_range(settings: Settings, name: str, values: str | list[str]) -> Range:
    """Every ``name`` parameter (``[prefix]YYYY-MM-DD[Thh:mm[:ss][offset]]``) read as one range of
    instants: a value stands for its whole day, minute or second (clinic time when it has no
    offset), and ``eq`` (the default), ``ge``, ``gt``, ``le``, ``lt`` compare against that."""
    found = Range()
    for text in [values] if isinstance(values, str) else values:
        match = _DATE.match(text) if len(text) <= 64 else None
        if match is None:
            raise InvalidField(name, "must be [eq|ge|gt|le|lt]YYYY-MM-DD or a dateTime like ge2026-12-14T10:30Z")
        prefix = match["prefix"] or "eq"
        if prefix not in PREFIXES:
            raise InvalidField(name, f"takes the prefixes {', '.join(PREFIXES)} only")
        low, high = _interval(settings, name, match)
        bounds = {"eq": (low, high), "ge": (low, None), "gt": (high, None), "le": (None, high), "lt": (None, low)}
        found = found.narrowed(*bounds[prefix])
    return found


def _interval(settings: Settings, name: str, match: re.Match) -> tuple[datetime, datetime]:
    """The instants a date or dateTime stands for, to its precision: a day, a minute, a second."""
    value = match["value"]
    try:
        if "T" not in value:
            day = date.fromisoformat(value)
            low, high = (datetime.combine(d, time(), tzinfo=settings.timezone) for d in (day, day + timedelta(days=1)))
            return low.astimezone(UTC), high.astimezone(UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=settings.timezone)
        if match["fraction"]:
            step = timedelta(microseconds=1)
        else:
            step = timedelta(seconds=1) if match["seconds"] else timedelta(minutes=1)
        return parsed.astimezone(UTC), (parsed + step).astimezone(UTC)
    except (ValueError, OverflowError):
        raise InvalidField(name, "is not a date or time that exists") from None


def reference_id(name: str, text: str, kind: str, *, count: int) -> int:
    """``{kind}/{id}`` or ``{id}`` naming one of ``count`` (1-based) doctors."""
    match = _REFERENCE.match(text)
    if match is None or match["type"] not in (None, kind):
        raise InvalidField(name, f"must be {kind}/{{id}} or {{id}}")
    if not 1 <= int(match["id"]) <= count:
        raise InvalidField(name, f"is not a {kind} of this clinic")
    return int(match["id"])


@dataclass(frozen=True)
class AppointmentSearch:
    statuses: tuple[str, ...] | None
    doctor_id: int | None
    range: Range
    count: int
    cursor: str | None


def appointment_search(settings: Settings, params: Mapping[str, str | list[str]]) -> AppointmentSearch:
    """``Appointment?date=&status=&practitioner=&_count=&_cursor=`` read; InvalidField names a bad one."""
    _known(params, APPOINTMENT_PARAMETERS, repeatable=("date",))
    statuses = None
    if (status := params.get("status")) is not None:
        codes = status.split(",")
        if not all(code in APPOINTMENT_STATUSES for code in codes):
            raise InvalidField("status", "must be Appointment status codes, e.g. pending, booked or cancelled")
        statuses = tuple(ours for code in codes for ours in our_statuses(code))
    doctor_id = None
    if (practitioner_ref := params.get("practitioner")) is not None:
        doctor_id = reference_id("practitioner", practitioner_ref, "Practitioner", count=len(settings.doctors))
    found = date_range(settings, "date", params["date"]) if "date" in params else Range()
    count = DEFAULT_COUNT
    if params.get("_count") is not None:
        count = whole_number("_count", params["_count"], low=1, high=MAX_COUNT)
    return AppointmentSearch(statuses, doctor_id, found, count, params.get("_cursor"))


@dataclass(frozen=True)
class SlotSearch:
    """The free-slot search's ``from``/``to``/``doctor_id`` and the exact instants to keep."""

    params: dict[str, str]
    range: Range
    free: bool  # False: a status no listed slot has, so nothing matches


def slot_search(settings: Settings, params: Mapping[str, str | list[str]], *, now: datetime) -> SlotSearch:
    """``Slot?schedule=&start=&status=free`` read; ``start`` defaults to the coming week, and may
    span at most ``MAX_DAYS`` days (as ``GET /slots``)."""
    _known(params, SLOT_PARAMETERS, repeatable=("start",))
    status = params.get("status", "free")
    if status not in SLOT_STATUSES:
        raise InvalidField("status", f"must be a Slot status code ({', '.join(SLOT_STATUSES)})")
    found = date_range(settings, "start", params["start"]) if "start" in params else Range()
    zone = settings.timezone
    first = (found.since or now).astimezone(zone).date()
    last = (found.until - timedelta(microseconds=1)).astimezone(zone).date() if found.until else None
    last = last if last is not None else first + timedelta(days=6)
    if last < first:
        last = first  # an empty range: the search finds nothing in it
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidField("start", f"must span at most {MAX_DAYS} days")
    search = {"from": first.isoformat(), "to": last.isoformat()}
    if (schedule_ref := params.get("schedule")) is not None:
        search["doctor_id"] = str(reference_id("schedule", schedule_ref, "Schedule", count=len(settings.doctors)))
    return SlotSearch(search, found, status == "free")


def in_range(found: Range, start: datetime) -> bool:
    return (found.since is None or start >= found.since) and (found.until is None or start < found.until)


def _known(params: Mapping[str, str | list[str]], names: tuple[str, ...], *, repeatable: tuple[str, ...]) -> None:
    for name, value in sorted(params.items()):
        if name not in names:
            raise InvalidField(name[:64], "is not a search parameter of this resource")
        if isinstance(value, list) and name not in repeatable:
            raise InvalidField(name, "must be given once")
