"""Time rules: when doctors work, and which instants are bookable slots."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from clinic.errors import InvalidField

DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_PERIOD = re.compile(
    r"^(?P<first>[A-Za-z]{3})(?:-(?P<last>[A-Za-z]{3}))?\s+"
    r"(?P<open>\d{1,2}:\d{2})-(?P<close>\d{1,2}:\d{2})$"
)
_LOCAL_SLOT = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}$")


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
