"""Every request and response body as a msgspec type: the one source of the validation and of the
schemas in ``/openapi.json``. Types that depend on the deployment (the roster's size, example slots)
are built from the settings by a function."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import UNSET, Meta, Struct, UnsetType

from clinic.booking_list import MAX_LIMIT
from clinic.bookings import PATIENT_MAX_LENGTH, REASON_MAX_LENGTH, Doctor
from clinic.broker.deadletters import DeadLetter
from clinic.config import STAGES, Settings

# What ``clinic.schedule.parse_slot`` reads, and no more: a date that exists (leap years included)
# from 2000 to 2999, ``HH:MM``, then nothing (clinic time) or an offset, ``Z`` or ``+HH:MM``, which
# ``:00`` seconds may precede.
# Anything else is refused for its shape by the validation, so the document and the server agree.
_LEAP_YEAR = "2[0-9](?:0[48]|[2468][048]|[13579][26])|2[048]00"
_DATE = (
    "(?:2[0-9]{3}-(?:(?:0[1-9]|1[0-2])-(?:0[1-9]|1[0-9]|2[0-8])|(?:0[13-9]|1[0-2])-(?:29|30)|(?:0[13578]|1[02])-31)"
    f"|(?:{_LEAP_YEAR})-02-29)"
)
SLOT_PATTERN = f"^{_DATE}[ T](?:[01][0-9]|2[0-3]):[0-5][0-9](?:(?::00)?(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9]))?$"
#: A pattern's meaning in words, for the 422 that refuses a value for its shape.
PATTERN_HINTS = {
    SLOT_PATTERN: "must be 'YYYY-MM-DD HH:MM' (clinic time) or ISO 8601 with an offset, like '2026-12-14T10:30+01:00'"
}

DateTime = Annotated[str, Meta(extra_json_schema={"format": "date-time"})]
Status = Literal["pending", "confirmed", "rejected", "cancelled"]
BookingId = Annotated[str, Meta(extra_json_schema={"format": "uuid"})]
Stage = Literal[STAGES]


def _slot_and_doctor(settings: Settings, slot_examples: list[str] | None) -> list[tuple]:
    slot = Annotated[
        str,
        Meta(
            pattern=SLOT_PATTERN,
            description=(
                "'YYYY-MM-DD HH:MM' in the clinic's zone, or ISO 8601 with an offset; in the future, on the "
                f"{settings.slot_minutes}-minute grid, at most {settings.horizon_days} days ahead"
            ),
            **({"examples": slot_examples} if slot_examples else {}),
        ),
    ]
    doctor_id = Annotated[
        int,
        Meta(ge=1, le=len(settings.doctors), description="a doctor from GET /doctors; null: the first doctor free"),
    ]
    return [("slot", slot), ("doctor_id", doctor_id | None, None)]


def booking_request(settings: Settings, *, slot_examples: list[str] | None = None) -> type[Struct]:
    """``POST /book``'s body. Types and shapes are checked here; the Unicode and slot rules by
    ``clinic.bookings.request_booking`` once the body has this shape."""
    patient = Annotated[
        str,
        Meta(
            min_length=1,
            max_length=PATIENT_MAX_LENGTH,
            description="the patient's name; letters of any script, no control or format characters",
        ),
    ]
    return msgspec.defstruct(
        "BookingRequest", [("patient", patient), *_slot_and_doctor(settings, slot_examples)], forbid_unknown_fields=True
    )


def reschedule_request(settings: Settings, *, slot_examples: list[str] | None = None) -> type[Struct]:
    """``POST /booking/{booking_id}/reschedule``'s body: the new slot and doctor, by ``POST /book``'s rules."""
    return msgspec.defstruct("RescheduleRequest", _slot_and_doctor(settings, slot_examples), forbid_unknown_fields=True)


class CancelRequest(Struct, forbid_unknown_fields=True):
    """``POST /booking/{booking_id}/cancel``'s optional body."""

    reason: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=REASON_MAX_LENGTH,
                description="why (default 'cancelled by the patient'); the same character rules as patient",
            ),
        ]
        | UnsetType
    ) = UNSET


class Booking(Struct):
    """A booking as ``POST /book`` answers it."""

    booking_id: BookingId
    status: Status
    patient: str
    slot: Annotated[str, Meta(description="ISO 8601 in the clinic's zone, with its offset")]
    doctor_id: int | None


class Event(Struct):
    status: Status
    reason: str | None
    at: DateTime
    by: Annotated[
        str | None,
        Meta(description="the name of the API key that made this change; null when the pipeline made it"),
    ]


class BookingSummary(Booking):
    """A booking with its outcome and the bookings it replaces or was replaced by."""

    reason: str | None
    created_at: DateTime
    updated_at: DateTime
    rescheduled_from: Annotated[BookingId | None, Meta(description="the booking this one would replace")]
    rescheduled_to: Annotated[BookingId | None, Meta(description="the booking that replaced this one")]


class BookingDetail(BookingSummary):
    """A booking with its outcome and history, as ``GET /booking/{booking_id}`` answers it."""

    history: list[Event]


class BookingPage(Struct):
    """One page of ``GET /bookings``, ordered by slot then id."""

    bookings: list[BookingSummary]
    next_cursor: Annotated[str | None, Meta(description="pass as cursor for the next page; null on the last page")]


class FreeSlot(Struct):
    start: Annotated[str, Meta(description="ISO 8601 in the clinic's zone, with its offset")]
    end: str
    doctor_id: int


class FreeSlots(Struct):
    """``GET /slots``: the free slots, ordered by start then doctor."""

    timezone: Annotated[str, Meta(description="the clinic's zone, in which from and to are read")]
    slots: list[FreeSlot]


#: GET /bookings' limit, as documented (clinic.booking_list checks it).
LIMIT_RANGE = (1, MAX_LIMIT)


class Roster(Struct):
    doctors: list[Doctor]


class Health(Struct):
    status: Literal["ok", "unavailable"]
    failing: list[Literal["database", "broker"]]
    checks: dict[str, str]


class DeadLetterList(Struct):
    dead_letters: list[DeadLetter]
    count: int
    retention_days: int


class ReplayRequest(Struct, forbid_unknown_fields=True):
    """Which dead letters to replay; ``clinic.broker.deadletters.replay_request`` decides between the two forms."""

    queue: Stage | UnsetType = UNSET
    message_id: Annotated[str, Meta(min_length=1, max_length=64)] | UnsetType = UNSET
    all: bool | UnsetType = UNSET


#: Either one message (``all`` absent or false) or every one (``all: true`` and no ``message_id``).
_REPLAY_FORMS = Meta(
    extra_json_schema={
        "oneOf": [
            {"required": ["message_id"], "properties": {"all": {"const": False}}},
            {"required": ["all"], "not": {"required": ["message_id"]}, "properties": {"all": {"const": True}}},
        ]
    }
)


ReplayBody = Annotated[ReplayRequest, _REPLAY_FORMS]


class Replayed(Struct):
    replayed: list[DeadLetter]
    count: int


class Problem(Struct, omit_defaults=True):
    """An RFC 9457 problem detail, the body of every error."""

    type: Annotated[str, Meta(description="`about:blank` (the status says it all) or `urn:clinic:problem:...`")]
    title: str
    status: int
    detail: str
    field: Annotated[str, Meta(description="the request field at fault (`body` for unreadable JSON)")] | UnsetType = (
        UNSET
    )
    header: Annotated[str, Meta(description="the request header at fault")] | UnsetType = UNSET
    booking_id: (
        Annotated[str, Meta(description="the booking in the way (the reschedule already in flight)")] | UnsetType
    ) = UNSET


class Me(Struct):
    """``GET /me``: the key a request is sent with, so a page knows what to show."""

    key_id: str
    name: str
    scope: Literal["client", "staff", "admin"]


class DaySlot(Struct):
    start: Annotated[str, Meta(description="ISO 8601 in the clinic's zone, with its offset")]
    end: str


class Day(Struct):
    """``GET /calendar``: every slot of the clinic's hours on one day, free or not, past or not."""

    date: Annotated[str, Meta(extra_json_schema={"format": "date"})]
    timezone: str
    slots: list[DaySlot]


class QueueDepth(Struct):
    stage: Stage
    queue: str
    ready: Annotated[int, Meta(description="messages waiting in the stage's queue")]
    delayed: Annotated[int, Meta(description="messages waiting to be retried (the delay queue)")]
    dead: Annotated[int, Meta(description="dead letters")]


class OldestPending(Struct):
    booking_id: BookingId
    created_at: DateTime
    age_seconds: float


class PipelineState(Struct):
    """``GET /admin/pipeline``: the pipeline at a glance."""

    queues: list[QueueDepth]
    oldest_pending: OldestPending | None


EventType = Literal["booking.pending", "booking.confirmed", "booking.rejected", "booking.cancelled"]
WebhookUrl = Annotated[
    str,
    Meta(
        min_length=1,
        max_length=2000,
        pattern="^[Hh][Tt][Tt][Pp][Ss]?://",
        description="http or https; a host that resolves to a loopback, private, link-local or multicast "
        "address is refused (unless the server runs with CLINIC_WEBHOOK_ALLOW_PRIVATE=1)",
    ),
]
EventTypes = Annotated[list[EventType], Meta(min_length=1, max_length=4, description="the event types to receive")]
Description = Annotated[str, Meta(max_length=200, description="what the endpoint is for")]


class WebhookCreate(Struct, forbid_unknown_fields=True):
    """``POST /webhooks``'s body."""

    url: WebhookUrl
    events: EventTypes
    description: Description | None = None


class WebhookChange(Struct, forbid_unknown_fields=True):
    """``PATCH /webhooks/{webhook_id}``'s body: only the fields to change."""

    url: WebhookUrl | UnsetType = UNSET
    events: EventTypes | UnsetType = UNSET
    description: Description | None | UnsetType = UNSET
    status: Literal["enabled", "disabled"] | UnsetType = UNSET


class Webhook(Struct):
    """A webhook endpoint; ``disabled_reason`` says why the server disabled it."""

    id: str
    url: str
    events: list[EventType]
    description: str | None
    status: Literal["enabled", "disabled"]
    disabled_reason: str | None
    created_at: DateTime
    updated_at: DateTime


class WebhookWithSecret(Webhook):
    """An endpoint with its signing secret, shown only when it is made (or rotated)."""

    secret: Annotated[str, Meta(description="`whsec_` + base64 of 32 random bytes; shown only this once")]


class WebhookList(Struct):
    webhooks: list[Webhook]


class Delivery(Struct):
    """One event to one endpoint, as the delivery log shows it."""

    id: str
    event_id: int
    type: EventType
    status: Literal["pending", "delivered", "failed"]
    attempts: int
    last_response: Annotated[int | str | None, Meta(description="the last answer's status code, or the error's class")]
    next_attempt_at: DateTime | None


class DeliveryList(Struct):
    deliveries: list[Delivery]
    next_cursor: str | None
