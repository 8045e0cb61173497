"""Idempotent booking requests: one ``Idempotency-Key`` creates at most one booking.

The key's record is written in the same transaction as the booking, so neither exists without
the other; the database's unique (owner, key) decides between concurrent duplicates. A record
answers for ``TTL`` (24 hours); older ones are ignored and deleted now and then.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

from clinic import bookings
from clinic.config import Settings
from clinic.errors import IdempotencyConflict, IdempotencyKeyReused, InvalidHeader, RescheduleInFlight
from clinic.store import Booking, IdempotencyRecord, database, utcnow

HEADER = "Idempotency-Key"
KEY_MAX_LENGTH = 255
TTL = timedelta(hours=24)
#: Expired records are deleted at most this often per process, by whichever request comes next.
CLEANUP_EVERY = timedelta(minutes=10)


@dataclass(frozen=True)
class Answer:
    """What the caller answers: the booking, and the status and body first given for it."""

    booking_id: str
    status: int
    body: dict
    replayed: bool  # True when this is the stored answer of an earlier request
    booking: Booking | None = None  # set only when this request created the booking


def check_key(value: str | None) -> str | None:
    """The header's value if it is usable: 1 to 255 visible ASCII characters (no spaces)."""
    if value is None:
        return None
    if not 0 < len(value) <= KEY_MAX_LENGTH:
        raise InvalidHeader(HEADER, f"must be 1 to {KEY_MAX_LENGTH} characters")
    if not all("\x21" <= char <= "\x7e" for char in value):
        raise InvalidHeader(HEADER, "must be visible ASCII characters, without spaces")
    return value


def fingerprint(body: Any) -> str:
    """SHA-256 of the body's canonical JSON: the same JSON value gives the same fingerprint."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode("ascii")).hexdigest()


def request_booking_once(
    settings: Settings,
    body: Any,
    *,
    key: str,
    owner: str | None,
    respond: Callable[[Booking], tuple[int, dict]],
    by: str | None = None,
    now: Callable[[], datetime] = utcnow,
) -> Answer:
    """Book as ``bookings.request_booking`` does, once per (owner, key) within ``TTL``.

    The same key with the same body gets the first answer again; with another body
    IdempotencyKeyReused; while the first request is still being stored, IdempotencyConflict.
    """
    return request_once(
        body,
        key=key,
        owner=owner,
        create=lambda stamp: bookings.request_booking(settings, body, owner=owner, by=by, now=lambda: stamp),
        respond=respond,
        now=now,
    )


def reschedule_once(
    settings: Settings,
    booking_id: str,
    body: Any,
    *,
    key: str,
    owner: str | None,
    respond: Callable[[Booking], tuple[int, dict]],
    caller: str | None = None,
    by: str | None = None,
    now: Callable[[], datetime] = utcnow,
) -> Answer:
    """Reschedule as ``bookings.request_reschedule`` does, once per (owner, key) within ``TTL``;
    the key remembers which booking it moved, so the same body for another booking is a reuse.
    A concurrent duplicate meets the first one's reschedule in flight: it gets the first answer.
    ``owner`` limits which bookings may be moved (None: any, for a staff key); ``caller`` is the
    key whose Idempotency-Keys these are (default ``owner``), so two desks' keys never collide."""
    caller = caller if caller is not None else owner
    request = {"reschedule": booking_id, "body": body}
    try:
        return request_once(
            request,
            key=key,
            owner=caller,
            create=lambda stamp: bookings.request_reschedule(
                settings, booking_id, body, owner=owner, by=by, now=lambda: stamp
            ),
            respond=respond,
            now=now,
        )
    except RescheduleInFlight:
        earlier = _earlier(caller or "", key, fingerprint(request), now())
        if earlier is None:
            raise
        return earlier


def request_once(
    request: Any,
    *,
    key: str,
    owner: str | None,
    create: Callable[[datetime], Booking],
    respond: Callable[[Booking], tuple[int, dict]],
    now: Callable[[], datetime] = utcnow,
) -> Answer:
    """Run ``create`` (which stores one booking) once per (owner, key) and ``request`` within ``TTL``."""
    owner_key, stamp, print_ = owner or "", now(), fingerprint(request)
    _cleanup_now_and_then(stamp)
    earlier = _earlier(owner_key, key, print_, stamp)
    if earlier is not None:
        return earlier
    try:
        with database.atomic():
            _forget_expired(owner_key, key, stamp)
            booking = create(stamp)
            status, response = respond(booking)
            IdempotencyRecord.create(
                owner=owner_key,
                key=key,
                fingerprint=print_,
                booking=booking.id,
                response_status=status,
                response_body=json.dumps(response, ensure_ascii=False),
                created_at=stamp,
            )
    except peewee.IntegrityError:
        # Another request with this key committed first: its booking is the one (ours rolled back).
        earlier = _earlier(owner_key, key, print_, stamp)
        if earlier is None:
            raise IdempotencyConflict(key) from None
        return earlier
    return Answer(booking.id, status, response, replayed=False, booking=booking)


def _earlier(owner: str, key: str, print_: str, stamp: datetime) -> Answer | None:
    fresh = IdempotencyRecord.created_at > stamp - TTL
    record = (
        IdempotencyRecord.select().where(IdempotencyRecord.owner == owner, IdempotencyRecord.key == key, fresh).first()
    )
    if record is None:
        return None
    if record.fingerprint != print_:
        raise IdempotencyKeyReused(key)
    return Answer(record.booking_id, record.response_status, json.loads(record.response_body), replayed=True)


def _forget_expired(owner: str, key: str, stamp: datetime) -> None:
    """An expired record of this very key would block the unique index: it goes first."""
    IdempotencyRecord.delete().where(
        IdempotencyRecord.owner == owner, IdempotencyRecord.key == key, IdempotencyRecord.created_at <= stamp - TTL
    ).execute()


_cleanup_lock = threading.Lock()
_last_cleanup: list[datetime] = []


def delete_expired(stamp: datetime | None = None) -> int:
    """Delete every record older than ``TTL``; return how many."""
    stamp = stamp or utcnow()
    with database.atomic():
        return IdempotencyRecord.delete().where(IdempotencyRecord.created_at <= stamp - TTL).execute()


def _cleanup_now_and_then(stamp: datetime) -> None:
    with _cleanup_lock:
        if _last_cleanup and stamp - _last_cleanup[0] < CLEANUP_EVERY:
            return
        _last_cleanup[:] = [stamp]
    delete_expired(stamp)
