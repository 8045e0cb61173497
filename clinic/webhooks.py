"""Webhook endpoints and their delivery log: register, change, rotate and delete an endpoint;
make one delivery per event and matching endpoint (the relay calls :func:`fan_out`); decide what
one attempt's answer means (:func:`attempt`), and give up after the last retry.

What an answer means: 2xx delivered; 410 disables the endpoint at once; 429, 5xx and network
errors are retried (``DeliveryRetry``, honouring Retry-After); any other answer fails without a
retry. An endpoint whose last ``FAILURES_TO_DISABLE`` deliveries all failed is disabled, and says why."""

from __future__ import annotations

import base64
import json
import random
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import peewee

from clinic import webhook_delivery
from clinic.config import Settings
from clinic.errors import DeliveryRetry, InvalidField, WebhookNotFound
from clinic.events import EVENT_TYPES, as_event
from clinic.secretbox import SecretBox
from clinic.store import Booking, BookingEvent, Compiled, WebhookDelivery, WebhookEndpoint, database, utcnow

ENABLED, DISABLED = "enabled", "disabled"
PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"
DELIVERY_STATUSES = (PENDING, DELIVERED, FAILED)
FAILURES_TO_DISABLE = 20
#: After a rotation the previous secret signs too, for this long.
ROTATION_OVERLAP = timedelta(hours=24)
DESCRIPTION_MAX_LENGTH = 200
URL_MAX_LENGTH = 2000
GONE = "the endpoint answered 410 Gone"
TOO_MANY_FAILURES = f"the last {FAILURES_TO_DISABLE} deliveries failed"


@dataclass(frozen=True)
class Registered:
    endpoint: WebhookEndpoint
    secret: str  # shown once, when registered or rotated


def new_secret() -> str:
    return webhook_delivery.SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode("ascii")


def _events(value: Any) -> str:
    if not value:
        raise InvalidField("events", "must name at least one event type")
    unknown = [kind for kind in value if kind not in EVENT_TYPES]
    if unknown:
        raise InvalidField("events", f"must be among {', '.join(EVENT_TYPES)}")
    return " ".join(dict.fromkeys(value))


def _description(value: Any) -> str | None:
    if value is None:
        return None
    text = value.strip()
    if len(text) > DESCRIPTION_MAX_LENGTH or not text.isprintable():
        raise InvalidField("description", f"must be at most {DESCRIPTION_MAX_LENGTH} printable characters")
    return text or None


def _url(settings: Settings, value: str) -> str:
    if len(value) > URL_MAX_LENGTH:
        raise InvalidField("url", f"must be at most {URL_MAX_LENGTH} characters")
    return webhook_delivery.check_url(value, allow_private=settings.webhook_allow_private)


def register(
    settings: Settings,
    box: SecretBox,
    *,
    owner: str,
    all_bookings: bool,
    url: str,
    events: list[str],
    description: str | None = None,
    now: Callable[[], datetime] = utcnow,
) -> Registered:
    """Store a new endpoint for ``owner`` (a key id); InvalidField for a bad or refused URL."""
    endpoint_id = "we_" + secrets.token_hex(8)
    secret = new_secret()
    stamp = now()
    with database.atomic():
        endpoint = WebhookEndpoint.create(
            id=endpoint_id,
            owner=owner,
            all_bookings=all_bookings,
            url=_url(settings, url),
            events=_events(events),
            description=_description(description),
            status=ENABLED,
            secret=box.seal(secret, bound_to=endpoint_id),
            created_at=stamp,
            updated_at=stamp,
        )
    return Registered(endpoint, secret)


def endpoints_of(owner: str) -> list[WebhookEndpoint]:
    return list(WebhookEndpoint.select().where(WebhookEndpoint.owner == owner).order_by(WebhookEndpoint.created_at))


def endpoint_of(owner: str, endpoint_id: str) -> WebhookEndpoint:
    """The owner's endpoint; WebhookNotFound for another owner's or none."""
    found = WebhookEndpoint.get_or_none(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.owner == owner)
    if found is None:
        raise WebhookNotFound(endpoint_id)
    return found


def change(
    settings: Settings, owner: str, endpoint_id: str, changes: Mapping[str, Any], *, now=utcnow
) -> WebhookEndpoint:
    """Apply a PATCH: ``url``, ``events``, ``description``, ``status`` (enabling clears why it was disabled)."""
    endpoint = endpoint_of(owner, endpoint_id)
    if "url" in changes:
        endpoint.url = _url(settings, changes["url"])
    if "events" in changes:
        endpoint.events = _events(changes["events"])
    if "description" in changes:
        endpoint.description = _description(changes["description"])
    if "status" in changes:
        if changes["status"] not in (ENABLED, DISABLED):
            raise InvalidField("status", "must be enabled or disabled")
        if changes["status"] == ENABLED:
            endpoint.disabled_reason, endpoint.failed_in_a_row = None, 0
        elif endpoint.status == ENABLED:
            endpoint.disabled_reason = "disabled by its owner"
        endpoint.status = changes["status"]
    endpoint.updated_at = now()
    with database.atomic():
        endpoint.save()
    return endpoint


def delete(owner: str, endpoint_id: str) -> None:
    endpoint = endpoint_of(owner, endpoint_id)
    with database.atomic():
        WebhookDelivery.delete().where(WebhookDelivery.endpoint == endpoint.id).execute()
        endpoint.delete_instance()


def rotate(box: SecretBox, owner: str, endpoint_id: str, *, now=utcnow) -> Registered:
    """A new secret; the current one keeps signing beside it for ``ROTATION_OVERLAP``."""
    endpoint = endpoint_of(owner, endpoint_id)
    secret, stamp = new_secret(), now()
    endpoint.previous_secret, endpoint.previous_until = endpoint.secret, stamp + ROTATION_OVERLAP
    endpoint.secret = box.seal(secret, bound_to=endpoint.id)
    endpoint.updated_at = stamp
    with database.atomic():
        endpoint.save()
    return Registered(endpoint, secret)


def signing_secrets(box: SecretBox, endpoint: WebhookEndpoint, *, now: datetime) -> list[str]:
    found = [box.open(endpoint.secret, bound_to=endpoint.id)]
    if endpoint.previous_secret and endpoint.previous_until and endpoint.previous_until > now:
        found.append(box.open(endpoint.previous_secret, bound_to=endpoint.id))
    return found


# Compiled: the relay asks on every batch, mostly to learn that there are none.
_ENDPOINTS_WITH_STATUS = Compiled(lambda status: WebhookEndpoint.select().where(WebhookEndpoint.status == status))


def fan_out(batch: Iterable[tuple[BookingEvent, Booking]], *, now=utcnow) -> list[int]:
    """Store one pending delivery per event and enabled endpoint that wants it (its type, and its
    owner's booking unless it hears of all); return the ids of those still pending, to send. Run
    twice on the same events (the relay died before marking them), it makes no second row."""
    endpoints = _ENDPOINTS_WITH_STATUS.rows(status=ENABLED)
    if not endpoints:
        return []
    stamp, rows = now(), []
    for event, booking in batch:
        kind = f"booking.{event.status}"
        for endpoint in endpoints:
            if kind in endpoint.events.split() and (endpoint.all_bookings or endpoint.owner == booking.owner):
                rows.append(
                    {
                        "endpoint": endpoint.id,
                        "event": event.id,
                        "type": kind,
                        "status": PENDING,
                        "attempts": 0,
                        "next_attempt_at": stamp,
                        "created_at": stamp,
                        "updated_at": stamp,
                    }
                )
    if not rows:
        return []
    with database.atomic():
        for start in range(0, len(rows), 100):
            WebhookDelivery.insert_many(rows[start : start + 100]).on_conflict_ignore().execute()
    query = WebhookDelivery.select(WebhookDelivery.id).where(
        WebhookDelivery.event.in_(list({row["event"] for row in rows})),
        WebhookDelivery.endpoint.in_(list({row["endpoint"] for row in rows})),
        WebhookDelivery.status == PENDING,
    )
    return [row.id for row in query.order_by(WebhookDelivery.id)]


def message_id(delivery: WebhookDelivery) -> str:
    """``webhook-id``: the same on every attempt (and replay) of one event to one endpoint."""
    return f"msg_{delivery.event_id}_{delivery.endpoint_id}"


def body_of(settings: Settings, delivery: WebhookDelivery) -> bytes:
    event = BookingEvent.get_by_id(delivery.event_id)
    payload = as_event(settings, event, Booking.get_by_id(event.booking_id)).payload
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def attempt(
    settings: Settings,
    box: SecretBox,
    delivery_id: int,
    *,
    post: Callable[..., webhook_delivery.Answer] = webhook_delivery.post,
    now: Callable[[], datetime] = utcnow,
    clock: Callable[[], float] = time.time,
) -> str | None:
    """Send one delivery once and record the answer; return its status. Raises DeliveryRetry
    (with the delay to wait) when the answer says to try again. A delivery already delivered, or
    unknown, is left alone: the message was delivered twice."""
    delivery = WebhookDelivery.get_or_none(WebhookDelivery.id == delivery_id)
    if delivery is None or delivery.status == DELIVERED:
        return None
    endpoint = WebhookEndpoint.get_by_id(delivery.endpoint_id)
    if endpoint.status != ENABLED:
        return _record(delivery, endpoint, FAILED, "EndpointDisabled", now=now)
    body, timestamp = body_of(settings, delivery), int(clock())
    signed = webhook_delivery.headers(signing_secrets(box, endpoint, now=now()), message_id(delivery), timestamp, body)
    try:
        answer = post(endpoint.url, body, signed, allow_private=settings.webhook_allow_private)
    except webhook_delivery.RefusedAddress:
        return _record(delivery, endpoint, FAILED, "RefusedAddress", now=now)
    except (OSError, webhook_delivery.http.client.HTTPException) as error:
        raise _retry(settings, delivery, endpoint, type(error).__name__, None, now=now) from None
    code = answer.status
    if 200 <= code < 300:
        return _record(delivery, endpoint, DELIVERED, str(code), now=now)
    if code == 410:
        return _record(delivery, endpoint, FAILED, str(code), now=now, disable=GONE)
    if code == 429 or code >= 500:
        raise _retry(settings, delivery, endpoint, str(code), answer.retry_after, now=now)
    return _record(delivery, endpoint, FAILED, str(code), now=now)


def _retry(settings, delivery, endpoint, response: str, retry_after: float | None, *, now) -> DeliveryRetry:
    """Record a failed attempt that will be tried again, and say when."""
    if retry_after is not None:
        delay_ms = min(int(retry_after * 1000), settings.webhook_max_backoff_ms)
    else:  # Dramatiq's own schedule: doubling from the minimum, with jitter, up to the maximum
        base = settings.webhook_min_backoff_ms * 2 ** max(0, delivery.attempts)
        delay_ms = int(min(base, settings.webhook_max_backoff_ms) * random.uniform(0.75, 1.0))
    _record(delivery, endpoint, PENDING, response, now=now, next_attempt=now() + timedelta(milliseconds=delay_ms))
    return DeliveryRetry(response, delay_ms)


def _record(delivery, endpoint, status, response, *, now, disable: str | None = None, next_attempt=None) -> str:
    stamp = now()
    with database.atomic():
        WebhookDelivery.update(
            status=status,
            attempts=WebhookDelivery.attempts + 1,
            last_response=response[:100],
            next_attempt_at=next_attempt,
            updated_at=stamp,
        ).where(WebhookDelivery.id == delivery.id).execute()
        if status == DELIVERED:
            WebhookEndpoint.update(failed_in_a_row=0).where(WebhookEndpoint.id == endpoint.id).execute()
        elif status == FAILED:
            _count_failure(endpoint.id, stamp, disable)
    return status


def _count_failure(endpoint_id: str, stamp: datetime, disable: str | None) -> None:
    WebhookEndpoint.update(failed_in_a_row=WebhookEndpoint.failed_in_a_row + 1, updated_at=stamp).where(
        WebhookEndpoint.id == endpoint_id
    ).execute()
    reason = disable
    if reason is None:
        row = WebhookEndpoint.get_by_id(endpoint_id)
        reason = TOO_MANY_FAILURES if row.failed_in_a_row >= FAILURES_TO_DISABLE else None
    if reason is not None:
        WebhookEndpoint.update(status=DISABLED, disabled_reason=reason).where(
            WebhookEndpoint.id == endpoint_id, WebhookEndpoint.status == ENABLED
        ).execute()


def give_up(delivery_id: int, *, now=utcnow) -> None:
    """The last retry failed (the message is in ``{ns}.webhooks.XQ``): the delivery failed."""
    stamp = now()
    with database.atomic():
        changed = (
            WebhookDelivery.update(status=FAILED, next_attempt_at=None, updated_at=stamp)
            .where(WebhookDelivery.id == delivery_id, WebhookDelivery.status == PENDING)
            .execute()
        )
        if changed:
            endpoint_id = WebhookDelivery.get_by_id(delivery_id).endpoint_id
            _count_failure(endpoint_id, stamp, None)


def deliveries(
    owner: str, endpoint_id: str, *, status: str | None = None, limit: int = 50, cursor: str | None = None
) -> tuple[list[WebhookDelivery], str | None]:
    """A page of the endpoint's delivery log, newest first, and the cursor of the next page."""
    endpoint = endpoint_of(owner, endpoint_id)
    query = WebhookDelivery.select().where(WebhookDelivery.endpoint == endpoint.id)
    if status is not None:
        if status not in DELIVERY_STATUSES:
            raise InvalidField("status", f"must be one of {', '.join(DELIVERY_STATUSES)}")
        query = query.where(WebhookDelivery.status == status)
    if cursor is not None:
        if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > 18:
            raise InvalidField("cursor", "is not a cursor this API gave")
        query = query.where(WebhookDelivery.id < int(cursor))
    rows = list(query.order_by(WebhookDelivery.id.desc()).limit(limit + 1))
    following = str(rows[limit - 1].id) if len(rows) > limit else None
    return rows[:limit], following


def replay(owner: str, endpoint_id: str, delivery_id: str, *, now=utcnow) -> WebhookDelivery:
    """Make a delivery pending again (same event, same ``webhook-id``), for the worker to send."""
    endpoint = endpoint_of(owner, endpoint_id)
    try:
        number = int(delivery_id)
    except ValueError:
        raise WebhookNotFound(delivery_id) from None
    with database.atomic():
        try:
            delivery = WebhookDelivery.get(WebhookDelivery.id == number, WebhookDelivery.endpoint == endpoint.id)
        except (peewee.DoesNotExist, OverflowError, peewee.DataError):
            raise WebhookNotFound(delivery_id) from None
        delivery.status, delivery.next_attempt_at, delivery.updated_at = PENDING, now(), now()
        delivery.save()
    return delivery
