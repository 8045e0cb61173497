"""Booking events: every status change is one row of ``booking_event``, written in the transaction
of the change, with a durable, increasing id. The AMQP notifications, the webhooks and the live
stream all read these rows, so no code path can change a status without every channel hearing.

Two readers, two ways of not missing a row:

- the relay (:mod:`clinic.ops.relay`) takes the rows it has not relayed yet (``relayed_at IS
  NULL``), whatever their id, so an event that commits late is still relayed;
- a stream reads "events after id N". On PostgreSQL a transaction can take id 10, another id 11,
  and 11 can commit first: a reader that handed out 11 and moved its cursor past 10 would skip 10
  for good. :class:`Watermark` hands out events only up to the first id that is missing, and
  waits up to ``SETTLE_SECONDS`` for it before deciding it belongs to a transaction that rolled
  back. On SQLite ids are taken and committed under the one writer lock, so there are no gaps.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from clinic.config import Settings
from clinic.store import Booking, BookingEvent, Compiled, database, utcnow

#: Seconds a stream waits for a missing event id before it takes it for a rolled-back transaction.
SETTLE_SECONDS = 2.0
#: An id missing behind an event older than this is an old rollback, not a transaction in flight.
OLD_GAP_SECONDS = 60.0
#: Events read from the database at a time.
PAGE = 200
EVENT_TYPES = ("booking.pending", "booking.confirmed", "booking.rejected", "booking.cancelled")


def event_type(status: str) -> str:
    return f"booking.{status}"


@dataclass(frozen=True)
class Event:
    """One event as every channel sends it: its id, type and the payload ``{"type", "timestamp", "data"}``."""

    id: int
    type: str
    booking_id: str
    owner: str | None
    payload: dict[str, Any]


def booking_fields(settings: Settings, booking: Booking) -> dict[str, Any]:
    """The booking as ``GET /booking/{id}`` shows it, without its history."""
    return {
        "booking_id": booking.id,
        "status": booking.status,
        "patient": booking.patient,
        "slot": booking.slot.astimezone(settings.timezone).isoformat(),
        "doctor_id": booking.doctor_id,
        "reason": booking.reason,
        "created_at": booking.created_at.isoformat(),
        "updated_at": booking.updated_at.isoformat(),
        "rescheduled_from": booking.rescheduled_from,
        "rescheduled_to": booking.rescheduled_to,
    }


def as_event(settings: Settings, row: BookingEvent, booking: Booking) -> Event:
    """The event of one history row. ``data`` is the booking as of this event: its status, reason
    and ``updated_at`` are the event's, so a late delivery of ``booking.confirmed`` never says
    ``cancelled``; the other fields are the booking's own."""
    data = booking_fields(settings, booking)
    data.update(status=row.status, reason=row.reason, updated_at=row.at.isoformat())
    kind = event_type(row.status)
    payload = {"type": kind, "timestamp": row.at.isoformat(), "data": data}
    return Event(row.id, kind, booking.id, booking.owner, payload)


def _joined():
    return BookingEvent.select(BookingEvent, Booking).join(Booking)


def _with_bookings(query) -> list[tuple[BookingEvent, Booking]]:
    return [(row, row.booking) for row in query]


_UNRELAYED = Compiled(
    lambda limit: _joined().where(BookingEvent.relayed_at.is_null()).order_by(BookingEvent.id).limit(limit)
)


def unrelayed(limit: int = 500) -> list[tuple[BookingEvent, Booking]]:
    """The events the relay has not handed on yet, oldest first (from a partial index). Compiled:
    the relay runs this on every commit it is woken by, mostly for one or two rows."""
    found = _UNRELAYED.joined((BookingEvent, Booking), limit=limit)
    for row, booking in found:
        row.booking = booking
    return found


#: The marking's SQL, compiled once per number of ids (at most the relay's batch, 500).
_MARKS: dict[int, Compiled] = {}


def _marking(at, **ids):
    return BookingEvent.update(relayed_at=at).where(BookingEvent.id.in_(list(ids.values())))


def _mark(count: int) -> Compiled:
    compiled = _MARKS.get(count)
    if compiled is None:
        compiled = _MARKS[count] = Compiled(_marking, names=("at", *(f"id{n}" for n in range(count))))
    return compiled


def mark_relayed(ids: Iterable[int], *, now: Callable[[], datetime] = utcnow) -> None:
    """One write for a whole batch of relayed events."""
    ids = list(ids)
    if ids:
        values = {f"id{n}": event_id for n, event_id in enumerate(ids)}
        with database.atomic():
            _mark(len(ids)).execute(at=BookingEvent.relayed_at.db_value(now()), **values)


def latest_id() -> int:
    """The id of the newest event (0 with none): where a stream without ``Last-Event-ID`` starts."""
    row = BookingEvent.select(BookingEvent.id).order_by(BookingEvent.id.desc()).first()
    return row.id if row else 0


class Watermark:
    """How far events may be handed out without skipping one that commits late (see the module).

    One per stream: ``safe(cursor)`` is the highest id up to which every id above ``cursor`` is
    either committed or long missing."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic, settle: float = SETTLE_SECONDS) -> None:
        self.clock, self.settle = clock, settle
        self._missing_since: dict[int, float] = {}

    def safe(self, cursor: int, limit: int = 1000) -> int:
        rows = list(
            BookingEvent.select(BookingEvent.id, BookingEvent.at)
            .where(BookingEvent.id > cursor)
            .order_by(BookingEvent.id)
            .limit(limit)
            .tuples()
        )
        now, expected, safe = self.clock(), cursor + 1, cursor
        for event_id, at in rows:
            if event_id > expected and not self._settled(range(expected, event_id), now, at):
                break
            expected, safe = event_id + 1, event_id
        self._missing_since = {i: t for i, t in self._missing_since.items() if i > safe}
        return safe

    def _settled(self, missing: range, now: float, next_at: datetime) -> bool:
        if (utcnow() - next_at).total_seconds() > OLD_GAP_SECONDS:
            return True
        first_seen = min(self._missing_since.setdefault(i, now) for i in missing[:100])
        return now - first_seen >= self.settle


def events_after(
    settings: Settings,
    cursor: int,
    upto: int,
    *,
    owner: str | None = None,
    booking_id: str | None = None,
    limit: int = PAGE,
) -> list[Event]:
    """The events with ``cursor < id <= upto``, oldest first: of ``owner``'s bookings only (None:
    everyone's), and of one booking when ``booking_id`` is given."""
    query = _joined().where(BookingEvent.id > cursor, BookingEvent.id <= upto)
    if owner is not None:
        query = query.where(Booking.owner == owner)
    if booking_id is not None:
        query = query.where(BookingEvent.booking == booking_id)
    query = query.order_by(BookingEvent.id).limit(limit)
    return [as_event(settings, row, booking) for row, booking in _with_bookings(query)]
