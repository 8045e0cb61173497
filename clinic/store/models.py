"""The tables: Peewee models bound late, through ``database``, to any ``playhouse.db_url`` database."""

from __future__ import annotations

from datetime import UTC, datetime

import peewee

#: Bound to the real database by :func:`connect`; the models never name a backend.
database = peewee.DatabaseProxy()


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTimeField(peewee.DateTimeField):
    """Stores aware datetimes as naive UTC, hands back aware UTC datetimes."""

    def db_value(self, value: datetime | None):
        if isinstance(value, datetime) and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return super().db_value(value)

    def python_value(self, value):
        if isinstance(value, str):  # SQLite's text: ISO 8601, which the C parser reads 15x faster than strptime
            try:
                value = datetime.fromisoformat(value)
            except ValueError:
                value = super().python_value(value)
        else:
            value = super().python_value(value)
        if isinstance(value, datetime) and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class BaseModel(peewee.Model):
    class Meta:
        database = database


class Booking(BaseModel):
    """One patient's request for one slot; ``status`` moves from pending to a final state once,
    and from pending or confirmed to cancelled once. A reschedule is a new booking whose
    ``rescheduled_from`` names the original; the original's ``rescheduled_to`` names the new one
    once it was confirmed in its place."""

    id = peewee.CharField(max_length=36, primary_key=True)
    patient = peewee.TextField()
    slot = UTCDateTimeField(index=True)
    requested_doctor_id = peewee.IntegerField(null=True)
    doctor_id = peewee.IntegerField(null=True)
    status = peewee.CharField(max_length=16, default="pending")
    reason = peewee.TextField(null=True)
    owner = peewee.CharField(max_length=64, null=True, index=True)
    swept_at = UTCDateTimeField(null=True)  # when the sweeper last re-sent it
    rescheduled_from = peewee.CharField(max_length=36, null=True)
    rescheduled_to = peewee.CharField(max_length=36, null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "booking"
        indexes = ((("status", "updated_at"), False),)


# The guard against double booking lives in the database, not in a check-then-write:
# at most one confirmed booking per doctor and slot, on SQLite and PostgreSQL alike.
Booking.add_index(Booking.index(Booking.doctor_id, Booking.slot, unique=True, where=(Booking.status == "confirmed")))
# At most one reschedule of a booking in flight: one pending booking per original.
Booking.add_index(Booking.index(Booking.rescheduled_from, unique=True, where=(Booking.status == "pending")))
# GET /slots reads the (slot, doctor) pairs held in a range of slots, from this index alone.
Booking.add_index(Booking.index(Booking.status, Booking.slot, Booking.doctor_id))
# GET /bookings pages by (slot, id) within one owner.
Booking.add_index(Booking.index(Booking.owner, Booking.slot, Booking.id))


class BookingEvent(BaseModel):
    """One status change of a booking, written in the transaction of the change: the booking's
    history and the one source of every outward event (``clinic.events``). A booking enters each
    status at most once; ``id`` is durable and increasing; ``relayed_at`` is set once the relay has
    handed the event to every channel (the AMQP notification, the webhooks). ``by`` is the name of
    the API key that made the change, or null when the pipeline made it (a confirmation, a
    rejection, the swap of a reschedule) or a request without a key did (open mode)."""

    booking = peewee.ForeignKeyField(Booking, backref="events", on_delete="CASCADE", column_name="booking_id")
    status = peewee.CharField(max_length=16)
    reason = peewee.TextField(null=True)
    at = UTCDateTimeField()
    by = peewee.CharField(max_length=100, null=True)
    relayed_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "booking_event"
        indexes = ((("booking", "status"), True),)


# The relay's work list: only the events not yet relayed are in this index, so finding them costs
# nothing however long the history grows.
BookingEvent.add_index(BookingEvent.index(BookingEvent.id, where=BookingEvent.relayed_at.is_null()))


class ApiKey(BaseModel):
    """A bearer API key: only the SHA-256 of its secret is kept; ``revoked_at`` ends it for good."""

    id = peewee.CharField(max_length=16, primary_key=True)
    name = peewee.CharField(max_length=100)
    scope = peewee.CharField(max_length=16)
    secret_hash = peewee.CharField(max_length=64)
    created_at = UTCDateTimeField()
    revoked_at = UTCDateTimeField(null=True)

    class Meta:
        table_name = "api_key"
        indexes = ((("scope", "revoked_at"), False),)


class IdempotencyRecord(BaseModel):
    """The answer given to one ``Idempotency-Key`` of one owner ('' when open), stored in the
    same transaction as the booking it created; the unique key decides concurrent duplicates."""

    owner = peewee.CharField(max_length=64)
    key = peewee.CharField(max_length=255)
    fingerprint = peewee.CharField(max_length=64)
    booking = peewee.ForeignKeyField(Booking, on_delete="CASCADE", column_name="booking_id")
    response_status = peewee.IntegerField()
    response_body = peewee.TextField()
    created_at = UTCDateTimeField(index=True)

    class Meta:
        table_name = "idempotency_record"
        indexes = ((("owner", "key"), True),)


class WebhookEndpoint(BaseModel):
    """Where a key wants booking events posted. ``owner`` is the key that registered it (it alone
    sees it); ``all_bookings`` is whether it hears of every booking (an admin key's) or only of
    its owner's. The signing secret is stored encrypted (``clinic.secretbox``), never in clear;
    after a rotation the previous one signs too, until ``previous_until``."""

    id = peewee.CharField(max_length=32, primary_key=True)
    owner = peewee.CharField(max_length=64, index=True)
    all_bookings = peewee.BooleanField(default=False)
    url = peewee.TextField()
    events = peewee.TextField()  # event types, space-separated
    description = peewee.TextField(null=True)
    status = peewee.CharField(max_length=16, default="enabled")
    disabled_reason = peewee.TextField(null=True)
    failed_in_a_row = peewee.IntegerField(default=0)  # deliveries ended failed since the last success
    secret = peewee.TextField()
    previous_secret = peewee.TextField(null=True)
    previous_until = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "webhook_endpoint"


class WebhookDelivery(BaseModel):
    """One event to one endpoint: the delivery log. One row per (endpoint, event), so relaying an
    event twice delivers it once. ``last_response`` is a status code or an error's class, never a
    response body (it might echo the patient's name)."""

    endpoint = peewee.ForeignKeyField(WebhookEndpoint, on_delete="CASCADE", column_name="endpoint_id")
    event = peewee.ForeignKeyField(BookingEvent, on_delete="CASCADE", column_name="event_id")
    type = peewee.CharField(max_length=32)
    status = peewee.CharField(max_length=16, default="pending")
    attempts = peewee.IntegerField(default=0)
    last_response = peewee.CharField(max_length=100, null=True)
    next_attempt_at = UTCDateTimeField(null=True)
    created_at = UTCDateTimeField()
    updated_at = UTCDateTimeField()

    class Meta:
        table_name = "webhook_delivery"
        indexes = ((("endpoint", "event"), True), (("endpoint", "status", "id"), False))
