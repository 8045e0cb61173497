"""What the operators' metrics count, read from the database at the time they are asked for.

The history rows are the record of every status a booking reached, written in the same transaction
as the change, by whichever process made it. Counting them is exact, never double-counts a
redelivered message, survives restarts and is the same whichever process answers: what an
in-process counter in each API and worker process could not promise."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import peewee

from clinic.bookings import CANCELLED, CONFIRMED, PENDING, REJECTED, STATUSES
from clinic.store import Booking, BookingEvent, WebhookDelivery, database, utcnow
from clinic.webhooks import DELIVERY_STATUSES

#: Seconds from pending to the first final status: a booking is decided in well under a second
#: when all goes well, and retried with backoff for up to a minute or more when a doctor's
#: calendar does not answer.
DECISION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


def status_counts() -> dict[str, int]:
    """How many bookings ever reached each status (one history row per booking and status)."""
    counts = dict.fromkeys(STATUSES, 0)
    query = BookingEvent.select(BookingEvent.status, peewee.fn.COUNT(BookingEvent.id)).group_by(BookingEvent.status)
    for status, count in query.tuples():
        counts[status] = count
    return counts


def webhook_deliveries() -> dict[str, int]:
    """Webhook deliveries (one per event and endpoint) by their outcome so far: pending, delivered, failed."""
    counts = dict.fromkeys(DELIVERY_STATUSES, 0)
    query = WebhookDelivery.select(WebhookDelivery.status, peewee.fn.COUNT(WebhookDelivery.id))
    for status, count in query.group_by(WebhookDelivery.status).tuples():
        counts[status] = count
    return counts


@dataclass(frozen=True)
class Decisions:
    """A cumulative histogram of the seconds from pending to one final status."""

    status: str
    buckets: tuple[tuple[float, int], ...]  # (upper bound, bookings decided within it)
    count: int
    total_seconds: float


def decision_times(buckets: Sequence[float] = DECISION_BUCKETS) -> list[Decisions]:
    """Per final status, how long bookings took from pending to it: confirmed and rejected (the
    pipeline's decisions), and cancelled for a booking cancelled while still pending. One query,
    bucketed by the database, so the answer is a few numbers whatever the number of bookings."""
    seconds = _seconds_between("pending_event.at", "final_event.at")
    columns = ", ".join(f"SUM(CASE WHEN {seconds} <= {float(bound)!r} THEN 1 ELSE 0 END)" for bound in buckets)
    sql = (
        f"SELECT final_event.status, COUNT(*), COALESCE(SUM({seconds}), 0), {columns} "
        "FROM booking_event AS final_event "
        "JOIN booking_event AS pending_event "
        "ON pending_event.booking_id = final_event.booking_id AND pending_event.status = %s "
        "WHERE final_event.status IN (%s, %s) OR (final_event.status = %s AND NOT EXISTS ("
        "SELECT 1 FROM booking_event AS decided WHERE decided.booking_id = final_event.booking_id "
        "AND decided.status IN (%s, %s))) "
        "GROUP BY final_event.status"
    )
    marker = database.obj.param
    params = (PENDING, CONFIRMED, REJECTED, CANCELLED, CONFIRMED, REJECTED)
    found = {
        status: Decisions(status, tuple((b, 0) for b in buckets), 0, 0.0) for status in (CONFIRMED, REJECTED, CANCELLED)
    }
    for status, count, total, *within in database.execute_sql(sql.replace("%s", marker), params).fetchall():
        found[status] = Decisions(
            status, tuple((b, int(n or 0)) for b, n in zip(buckets, within, strict=True)), int(count), float(total)
        )
    return list(found.values())


def oldest_pending_age(*, now: datetime | None = None) -> float:
    """Seconds the booking pending longest has waited; 0 when none is pending."""
    oldest = Booking.select(peewee.fn.MIN(Booking.created_at)).where(Booking.status == PENDING).scalar()
    if oldest is None:
        return 0.0
    if isinstance(oldest, str):  # SQLite hands back text
        oldest = datetime.fromisoformat(oldest)
    stamp = Booking.created_at.python_value(oldest)
    return max(0.0, ((now or utcnow()) - stamp).total_seconds())


def _seconds_between(start: str, end: str) -> str:
    """SQL for the seconds from one naive-UTC timestamp column to another, on SQLite or PostgreSQL."""
    if isinstance(database.obj, peewee.PostgresqlDatabase):
        return f"EXTRACT(EPOCH FROM ({end} - {start}))"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"
