"""Every accepted booking must end final and announced: a fast wrong answer is worth nothing."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping

from clinic import store
from clinic.store import Booking

#: Ids per ``IN (...)`` query: well under SQLite's bound-parameter limit.
CHUNK = 500


def check(database_url: str, accepted: Collection[str], notified: Mapping[str, str]) -> dict:
    """Count the accepted bookings by their status in the database. ``lost`` are accepted but not
    stored; ``unannounced`` are final but never reached the subscriber. The benchmark is ``ok`` only
    when every booking is confirmed (each had its own free slot) and announced."""
    store.connect(database_url)
    statuses: dict[str, str] = {}
    ids = list(accepted)
    with store.database.connection_context():
        for start in range(0, len(ids), CHUNK):
            query = Booking.select(Booking.id, Booking.status).where(Booking.id.in_(ids[start : start + CHUNK]))
            statuses.update(query.tuples().iterator())
    counts = Counter(statuses.values())
    final = [booking_id for booking_id, status in statuses.items() if status != "pending"]
    result = {
        "accepted": len(ids),
        "confirmed": counts.get("confirmed", 0),
        "rejected": counts.get("rejected", 0),
        "pending": counts.get("pending", 0),
        "lost": len(ids) - len(statuses),
        "notified": sum(1 for booking_id in ids if booking_id in notified),
        "unannounced": sum(1 for booking_id in final if booking_id not in notified),
    }
    result["ok"] = result["confirmed"] == len(ids) and result["unannounced"] == 0
    return result


def combine(checks: list[dict]) -> dict:
    """The run's totals over every system it started."""
    keys = ("accepted", "confirmed", "rejected", "pending", "lost", "notified", "unannounced")
    total = {key: sum(check[key] for check in checks) for key in keys}
    total["ok"] = all(check["ok"] for check in checks) and bool(checks)
    return total
