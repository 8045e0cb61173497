"""Free slots: every slot of the doctors' working hours in a range of days that no booking holds.

A slot is free for a doctor when it is in the working hours, in the future, within the booking
horizon, and no pending or confirmed booking names that doctor for it (one asked for, or one
given by a confirmation). A pending booking with no doctor yet holds nothing: which doctor it gets
is decided later, so its slot stays listed until then. The grid is computed in Python and the holds
are read in one query per request, whatever the range.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from clinic.bookings import HOLDING, roster
from clinic.config import Settings
from clinic.errors import InvalidField
from clinic.schedule import day_range, doctor_param
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

    def as_dict(self) -> dict:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(), "doctor_id": self.doctor_id}


def grid(settings: Settings, first: date, last: date, *, now: datetime) -> list[datetime]:
    """The bookable slot starts (aware UTC, ascending) from day ``first`` to ``last`` in the clinic's
    zone: on the slot grid, inside working hours, after ``now`` and within the horizon. A local time
    a clock change skips is no slot; one it repeats is two."""
    zone, minutes = settings.timezone, settings.slot_minutes
    horizon = now + timedelta(days=settings.horizon_days)
    starts: set[datetime] = set()
    day = first
    while day <= last:
        for period in settings.hours.periods:
            if period.weekday != day.weekday():
                continue
            minute = -(-period.opens // minutes) * minutes
            while minute + minutes <= period.closes:
                wall = datetime.combine(day, time(minute // 60, minute % 60))
                for fold in (0, 1):
                    local = wall.replace(tzinfo=zone, fold=fold)
                    instant = local.astimezone(UTC)
                    if instant.astimezone(zone).replace(tzinfo=None) == wall and now < instant <= horizon:
                        starts.add(instant)
                minute += minutes
        day += timedelta(days=1)
    return sorted(starts)


def held(start: datetime, end: datetime, doctor_id: int | None = None) -> set[tuple[int, datetime]]:
    """(doctor, slot) of every pending or confirmed booking with a doctor, between two instants:
    one query, on the (status, slot, doctor_id) index alone. The slots are read as the database
    holds them (naive UTC) and made aware here, without Peewee's per-row conversion, which cost
    more than the query itself."""
    query = Booking.select(Booking.doctor_id, Booking.slot).where(
        Booking.status.in_(HOLDING), Booking.slot >= start, Booking.slot <= end, Booking.doctor_id.is_null(False)
    )
    if doctor_id is not None:
        query = query.where(Booking.doctor_id == doctor_id)
    cursor = Booking._meta.database.execute(query)
    return {(doctor, _naive_utc(slot).replace(tzinfo=UTC)) for doctor, slot in cursor.fetchall()}


def _naive_utc(value: object) -> datetime:
    # SQLite hands back text ('2026-12-14 10:30:00'), PostgreSQL a naive datetime.
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def free_slots(
    settings: Settings,
    params: Mapping[str, str],
    *,
    now: Callable[[], datetime] = utcnow,
    holds: Callable[[datetime, datetime, int | None], Iterable[tuple[int, datetime]]] = held,
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
    starts = grid(settings, first, last, now=instant)
    if not starts:
        return []
    taken = set(holds(starts[0], starts[-1], doctor_id))
    zone, length = settings.timezone, timedelta(minutes=settings.slot_minutes)
    return [
        FreeSlot(start.astimezone(zone), (start + length).astimezone(zone), doctor)
        for start in starts
        for doctor in doctors
        if (doctor, start) not in taken
    ]
