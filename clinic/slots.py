"""Free slots: every slot of the doctors' working hours in a range of days that no booking holds.

A slot is free for a doctor when it is in the working hours, in the future, within the booking
horizon, and no pending or confirmed booking names that doctor for it (one asked for, or one
given by a confirmation). A pending booking with no doctor yet holds nothing: which doctor it gets
is decided later, so its slot stays listed until then. The grid is computed in Python and the holds
are read in one query per request, whatever the range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from clinic.bookings import HOLDING, roster
from clinic.config import Settings
from clinic.errors import InvalidField
from clinic.schedule import OpeningHours, day_range, doctor_param, parse_day
from clinic.store import Booking, utcnow

#: ``to`` defaults to ``from`` plus this many days (a week, both ends included).
DEFAULT_DAYS = 7
#: At most this many days (both ends included) per request.
MAX_DAYS = 31
PARAMETERS = ("from", "to", "doctor_id")


@dataclass(frozen=True)
class FreeSlot:
    start: datetime  # aware, in the clinic's zone
    end: datetime
    doctor_id: int
    text: tuple[str, str] = field(default=("", ""), compare=False, repr=False)  # start, end in ISO 8601

    def as_dict(self) -> dict:
        start, end = self.text if self.text[0] else (self.start.isoformat(), self.end.isoformat())
        return {"start": start, "end": end, "doctor_id": self.doctor_id}


@dataclass(frozen=True)
class _Start:
    instant: datetime  # aware UTC
    naive: datetime  # the same, naive UTC: as the database holds it
    start: datetime  # the same, in the clinic's zone
    end: datetime
    text: tuple[str, str]


@lru_cache(maxsize=1024)
def _day(zone: ZoneInfo, hours: OpeningHours, minutes: int, day: date) -> tuple[_Start, ...]:
    """Every slot start of one local day, ascending, with its texts: computed once per day, since
    a calendar's days do not change (a month costs a few dict lookups after the first request)."""
    instants: set[datetime] = set()
    for period in hours.periods:
        if period.weekday != day.weekday():
            continue
        minute = -(-period.opens // minutes) * minutes
        while minute + minutes <= period.closes:
            wall = datetime.combine(day, time(minute // 60, minute % 60))
            for fold in (0, 1):
                instant = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                if instant.astimezone(zone).replace(tzinfo=None) == wall:
                    instants.add(instant)
            minute += minutes
    length = timedelta(minutes=minutes)
    starts = []
    for instant in sorted(instants):
        start, end = instant.astimezone(zone), (instant + length).astimezone(zone)
        starts.append(_Start(instant, instant.replace(tzinfo=None), start, end, (start.isoformat(), end.isoformat())))
    return tuple(starts)


def _starts(settings: Settings, first: date, last: date, now: datetime) -> list[_Start]:
    horizon = now + timedelta(days=settings.horizon_days)
    found: list[_Start] = []
    day = first
    while day <= last:
        for start in _day(settings.timezone, settings.hours, settings.slot_minutes, day):
            if now < start.instant <= horizon:
                found.append(start)
        day += timedelta(days=1)
    return found


def grid(settings: Settings, first: date, last: date, *, now: datetime) -> list[datetime]:
    """The bookable slot starts (aware UTC, ascending) from day ``first`` to ``last`` in the clinic's
    zone: on the slot grid, inside working hours, after ``now`` and within the horizon. A local time
    a clock change skips is no slot; one it repeats is two."""
    return [start.instant for start in _starts(settings, first, last, now)]


def day_grid(settings: Settings, text: str | None, *, now: Callable[[], datetime] = utcnow) -> tuple[date, list]:
    """One local day (``text``, ``YYYY-MM-DD``; default today) and every slot of the clinic's hours
    on it as ``(start, end)`` ISO texts, past and future alike: the rows of the front desk's day."""
    day = parse_day("date", text) if text is not None else now().astimezone(settings.timezone).date()
    return day, [start.text for start in _day(settings.timezone, settings.hours, settings.slot_minutes, day)]


def held(start: datetime, end: datetime, doctor_id: int | None = None) -> set[tuple[int, datetime]]:
    """(doctor, slot as naive UTC) of every pending or confirmed booking with a doctor, between two
    instants: one query, on the (status, slot, doctor_id) index alone. The slots stay naive UTC,
    as the database holds them: Peewee's per-row conversion to aware datetimes cost more than the
    query itself."""
    query = Booking.select(Booking.doctor_id, Booking.slot).where(
        Booking.status.in_(HOLDING), Booking.slot >= start, Booking.slot <= end, Booking.doctor_id.is_null(False)
    )
    if doctor_id is not None:
        query = query.where(Booking.doctor_id == doctor_id)
    cursor = Booking._meta.database.execute(query)
    return {(doctor, _naive_utc(slot)) for doctor, slot in cursor.fetchall()}


def _naive_utc(value: object) -> datetime:
    # SQLite hands back text ('2026-12-14 10:30:00'), PostgreSQL a naive datetime.
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def free_slots(
    settings: Settings,
    params: Mapping[str, str],
    *,
    now: Callable[[], datetime] = utcnow,
    holds: Callable[[datetime, datetime, int | None], Iterable[tuple[int, datetime]]] = held,  # naive UTC slots
) -> list[FreeSlot]:
    """The free slots a ``GET /slots`` query asks for (``from``, ``to``, ``doctor_id``), ordered by
    start then doctor; InvalidField names a bad parameter."""
    unknown = sorted(name for name in params if name not in PARAMETERS)
    if unknown:
        raise InvalidField(unknown[0][:64], "is not a parameter of this request")
    instant = now()
    today = instant.astimezone(settings.timezone).date()
    first, last = day_range(params.get("from"), params.get("to"), default_from=today, default_days=DEFAULT_DAYS)
    if (last - first).days + 1 > MAX_DAYS:
        raise InvalidField("to", f"must be at most {MAX_DAYS - 1} days after from")
    doctor_id = doctor_param(settings, params.get("doctor_id"))
    doctors = [doctor_id] if doctor_id is not None else [doctor.id for doctor in roster(settings)]
    starts = _starts(settings, first, last, instant)
    if not starts:
        return []
    taken = set(holds(starts[0].instant, starts[-1].instant, doctor_id))
    return [
        FreeSlot(start.start, start.end, doctor, start.text)
        for start in starts
        for doctor in doctors
        if (doctor, start.naive) not in taken
    ]
