"""Pages of bookings for ``GET /bookings``: filtered, ordered by slot then id, paged by keyset.

The cursor is opaque to clients: base64url of the JSON ``[slot, id]`` of the last booking of the
page. The next page starts strictly after that pair, so bookings added or changed meanwhile never
shift it (no offsets). A cursor is validated like any parameter: a tampered one is 422.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from clinic.bookings import STATUSES
from clinic.config import Settings
from clinic.errors import InvalidField
from clinic.schedule import day_range, doctor_param, whole_number
from clinic.store import Booking

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
PARAMETERS = ("status", "doctor_id", "from", "to", "limit", "cursor")
_CURSOR_MAX_LENGTH = 200


@dataclass(frozen=True)
class Page:
    bookings: list[Booking]
    next_cursor: str | None


def encode_cursor(booking: Booking) -> str:
    pair = [booking.slot.astimezone(UTC).isoformat(), booking.id]
    return base64.urlsafe_b64encode(json.dumps(pair, separators=(",", ":")).encode()).rstrip(b"=").decode("ascii")


def decode_cursor(text: str) -> tuple[datetime, str]:
    """The ``(slot, id)`` a cursor stands for; InvalidField naming ``cursor`` for anything else."""
    try:
        if len(text) > _CURSOR_MAX_LENGTH:
            raise ValueError
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        slot_text, booking_id = json.loads(raw)
        slot = datetime.fromisoformat(slot_text)
        if slot.tzinfo is None:
            raise ValueError
        return slot.astimezone(UTC), str(uuid.UUID(booking_id))
    except (ValueError, TypeError, AttributeError, binascii.Error, RecursionError):
        raise InvalidField("cursor", "is not a cursor this API gave (take next_cursor as it is)") from None


def list_bookings(settings: Settings, params: Mapping[str, str], *, owner: str | None) -> Page:
    """One page of the bookings ``owner`` may see (None: every booking), filtered by ``status``,
    ``doctor_id`` and the slot's day ``from``/``to`` (clinic zone, both included)."""
    unknown = sorted(name for name in params if name not in PARAMETERS)
    if unknown:
        raise InvalidField(unknown[0][:64], "is not a parameter of this request")
    query = Booking.select()
    if owner is not None:
        query = query.where(Booking.owner == owner)
    if (status := params.get("status")) is not None:
        if status not in STATUSES:
            raise InvalidField("status", f"must be one of {', '.join(STATUSES)}")
        query = query.where(Booking.status == status)
    if (doctor_id := doctor_param(settings, params.get("doctor_id"))) is not None:
        query = query.where(Booking.doctor_id == doctor_id)
    first, last = day_range(params.get("from"), params.get("to"), default_from=None, default_days=None)
    if first is not None:
        query = query.where(Booking.slot >= _midnight(settings, "from", first))
    if last is not None:
        query = query.where(Booking.slot < _midnight(settings, "to", last, days_after=1))
    limit = DEFAULT_LIMIT
    if params.get("limit") is not None:
        limit = whole_number("limit", params["limit"], low=1, high=MAX_LIMIT)
    if params.get("cursor") is not None:
        slot, booking_id = decode_cursor(params["cursor"])
        query = query.where((Booking.slot > slot) | ((Booking.slot == slot) & (Booking.id > booking_id)))
    found = list(query.order_by(Booking.slot, Booking.id).limit(limit + 1))
    page = found[:limit]
    return Page(page, encode_cursor(page[-1]) if len(found) > limit else None)


def _midnight(settings: Settings, name: str, day: date, *, days_after: int = 0) -> datetime:
    """The first instant of ``day`` (plus ``days_after``) in the clinic's zone."""
    try:
        return datetime.combine(day + timedelta(days=days_after), time(), tzinfo=settings.timezone).astimezone(UTC)
    except OverflowError:  # the first or last days datetime can hold
        raise InvalidField(name, "is out of range") from None
