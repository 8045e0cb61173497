"""Time rules: when doctors work, and which instants are bookable slots."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from clinic.errors import InvalidField

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_PERIOD = re.compile(
    r"^(?P<first>[A-Za-z]{3})(?:-(?P<last>[A-Za-z]{3}))?\s+"
    r"(?P<open>\d{1,2}:\d{2})-(?P<close>\d{1,2}:\d{2})$"
)
_LOCAL_SLOT = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_WHOLE_NUMBER = re.compile(r"^[0-9]{1,9}$")


@dataclass(frozen=True)
class Period:
    """One stretch of working time on one weekday (0 is Monday)."""

    weekday: int
    opens: int  # minutes after midnight
    closes: int


@dataclass(frozen=True)
class OpeningHours:
    """When doctors work, e.g. ``Mon-Fri 08:00-18:00; Sat 09:00-13:00``."""

    periods: tuple[Period, ...]
    text: str

    @classmethod
    def parse(cls, text: str) -> OpeningHours:
        periods: list[Period] = []
        for part in re.split(r"[;,]", text):
            part = part.strip()
            if not part:
                continue
            match = _PERIOD.match(part)
            if not match:
                raise ValueError(f"cannot read {part!r}: expected like 'Mon-Fri 08:00-18:00'")
            first, last = _weekday(match["first"]), _weekday(match["last"] or match["first"])
            opens, closes = _clock(match["open"]), _clock(match["close"])
            if opens >= closes:
                raise ValueError(f"{part!r} closes before it opens")
            days = range(first, last + 1) if first <= last else [*range(first, 7), *range(0, last + 1)]
            periods.extend(Period(day, opens, closes) for day in days)
        if not periods:
            raise ValueError("names no working hours")
        return cls(tuple(periods), text)

    def covers(self, local_start: datetime, minutes: int) -> bool:
        """True when a slot starting at this clinic-local time ends inside one working period."""
        start = local_start.hour * 60 + local_start.minute
        return any(
            period.weekday == local_start.weekday() and period.opens <= start and start + minutes <= period.closes
            for period in self.periods
        )


def parse_slot(
    text: object,
    *,
    zone: ZoneInfo,
    slot_minutes: int,
    now: datetime,
    horizon_days: int,
) -> datetime:
    """Read a requested slot as an aware UTC datetime, or raise InvalidField naming ``slot``.

    ``YYYY-MM-DD HH:MM`` is clinic-local time; ISO 8601 with an offset is taken as written.
    The slot must be on the clinic's grid, in the future, and within the booking horizon.
    """
    if not isinstance(text, str):
        raise InvalidField("slot", "must be a string like '2026-12-14 10:30'")
    if len(text) > 64:
        raise InvalidField("slot", "is too long to be a date and time")
    try:
        parsed = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidField("slot", "must be 'YYYY-MM-DD HH:MM' or ISO 8601 with an offset") from None
    if parsed.tzinfo is None:
        if not _LOCAL_SLOT.match(text.strip()):
            raise InvalidField("slot", "without an offset must be 'YYYY-MM-DD HH:MM' (clinic time)")
        local = parsed.replace(tzinfo=zone)
        if local.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != parsed:
            raise InvalidField("slot", "does not exist in the clinic's time zone (clocks change)")
    else:
        local = parsed.astimezone(zone)
    minute_of_day = local.hour * 60 + local.minute
    if local.second or local.microsecond or minute_of_day % slot_minutes:
        raise InvalidField("slot", f"must start on the {slot_minutes}-minute grid")
    instant = local.astimezone(UTC)
    if instant <= now:
        raise InvalidField("slot", "is in the past")
    if instant > now + timedelta(days=horizon_days):
        raise InvalidField("slot", f"is more than {horizon_days} days ahead")
    return instant


def parse_day(name: str, text: object) -> date:
    """A ``YYYY-MM-DD`` query parameter as a date, or InvalidField naming the parameter."""
    if not isinstance(text, str) or not _DAY.match(text):
        raise InvalidField(name, "must be a date written YYYY-MM-DD")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise InvalidField(name, "is not a date that exists") from None


def day_range(
    first: str | None, last: str | None, *, default_from: date | None, default_days: int | None
) -> tuple[date | None, date | None]:
    """``from`` and ``to`` (both included), each defaulted when not given: ``from`` to
    ``default_from``, ``to`` to ``from`` plus ``default_days - 1`` days (None: open)."""
    start = parse_day("from", first) if first is not None else default_from
    if last is not None:
        end = parse_day("to", last)
    elif start is not None and default_days is not None:
        end = start + timedelta(days=default_days - 1)
    else:
        end = None
    if start is not None and end is not None and end < start:
        raise InvalidField("to", "must not be before from")
    return start, end


def whole_number(name: str, text: object, *, low: int, high: int) -> int:
    """A whole-number query parameter within ``low..high``, or InvalidField naming it."""
    if not isinstance(text, str) or not _WHOLE_NUMBER.match(text) or not low <= int(text) <= high:
        raise InvalidField(name, f"must be a whole number from {low} to {high}")
    return int(text)


def doctor_param(settings, text: object) -> int | None:
    """The ``doctor_id`` query parameter: absent, or a doctor of the roster."""
    if text is None:
        return None
    if not isinstance(text, str) or not _WHOLE_NUMBER.match(text):
        raise InvalidField("doctor_id", "must be a whole number (see GET /doctors)")
    if not 1 <= int(text) <= len(settings.doctors):
        raise InvalidField("doctor_id", "is not a doctor of this clinic (see GET /doctors)")
    return int(text)


def _weekday(name: str) -> int:
    try:
        return DAYS.index(name.capitalize())
    except ValueError:
        raise ValueError(f"{name!r} is not a weekday (Mon..Sun)") from None


def _clock(text: str) -> int:
    hours, minutes = (int(part) for part in text.split(":"))
    if not (0 <= hours < 24 and 0 <= minutes < 60 or (hours, minutes) == (24, 0)):
        raise ValueError(f"{text!r} is not a time of day")
    return hours * 60 + minutes
