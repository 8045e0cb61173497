"""Every step of the booking lifecycle, with an in-memory booking store: no database, no broker."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import pytest

from clinic import lifecycle
from clinic.availability import AvailabilitySystem
from clinic.bookings import CANCELLED, CONFIRMED, HOLDING, PENDING, REJECTED, RESCHEDULED, Outcome
from clinic.config import CONFIRM, NOTIFY, PROCESS, REJECT, WEBHOOKS
from clinic.errors import DoctorUnavailable, qualified_name
from clinic.lifecycle import STOP, Step

MONDAY_10 = datetime(2030, 1, 7, 10, 0, tzinfo=UTC)
MONDAY_20 = datetime(2030, 1, 7, 20, 0, tzinfo=UTC)


@dataclass
class FakeBooking:
    id: str
    slot: datetime
    requested_doctor_id: int | None = None
    doctor_id: int | None = None
    status: str = PENDING
    reason: str | None = None
    patient: str = "Ana Pérez"
    rescheduled_from: str | None = None
    rescheduled_to: str | None = None


class FakeBookings:
    """The BookingStore contract in memory, with the database's one-confirmation-per-slot rule."""

    def __init__(self, *bookings: FakeBooking) -> None:
        self.rows = {booking.id: booking for booking in bookings}
        self.history = {booking.id: {PENDING, booking.status} for booking in bookings}

    def load(self, booking_id):
        return self.rows.get(booking_id)

    def statuses_of(self, booking_id):
        return self.history.get(booking_id, set())

    def cancel(self, booking_id, reason):
        booking = self.rows[booking_id]
        if booking.status in HOLDING:
            booking.status, booking.reason = CANCELLED, reason
            self.history[booking_id].add(CANCELLED)

    def doctors_taken_at(self, slot):
        return {b.doctor_id for b in self.rows.values() if b.slot == slot and b.status == CONFIRMED}

    def confirm(self, booking_id, doctor_id):
        return self._finish(booking_id, CONFIRMED, doctor_id=doctor_id)

    def reject(self, booking_id, reason):
        return self._finish(booking_id, REJECTED, reason=reason)

    def _finish(self, booking_id, status, **changes):
        booking = self.rows.get(booking_id)
        if booking is None:
            return Outcome.MISSING
        if booking.status != PENDING:
            return Outcome.ALREADY if booking.status == status else Outcome.CONFLICT
        if status == CONFIRMED and changes["doctor_id"] in self.doctors_taken_at(booking.slot):
            return Outcome.CONFLICT
        booking.status = status
        self.history[booking_id].add(status)
        for name, value in changes.items():
            setattr(booking, name, value)
        original = self.rows.get(booking.rescheduled_from)
        if status == CONFIRMED and original and original.status in HOLDING and original.rescheduled_to is None:
            self.cancel(original.id, RESCHEDULED)
            original.rescheduled_to = booking_id
        return Outcome.CHANGED


class Calendar(AvailabilitySystem):
    def __init__(self, answers: bool = True) -> None:
        super().__init__(0.0 if answers else 1.0, draw=lambda: 0.0)


def test_an_accepted_booking_goes_to_the_processor():
    assert lifecycle.accepted("b1") == Step(PROCESS, ("b1",))


def test_a_free_slot_goes_to_the_confirmer_with_the_first_free_doctor(settings):
    books = FakeBookings(FakeBooking("taken", MONDAY_10, doctor_id=1, status=CONFIRMED), FakeBooking("b1", MONDAY_10))
    assert lifecycle.process(settings, "b1", Calendar(), books=books) == Step(CONFIRM, ("b1", 2))


@pytest.mark.parametrize(
    "booking, reason",
    [
        (FakeBooking("b1", MONDAY_20), lifecycle.OUTSIDE_HOURS),
        (FakeBooking("b1", MONDAY_10, requested_doctor_id=1), lifecycle.SLOT_TAKEN),
    ],
)
def test_a_slot_that_cannot_be_had_goes_to_the_rejector_with_its_reason(settings, booking, reason):
    books = FakeBookings(FakeBooking("taken", MONDAY_10, doctor_id=1, status=CONFIRMED), booking)
    assert lifecycle.process(settings, "b1", Calendar(), books=books) == Step(REJECT, ("b1", reason))


def test_no_free_doctor_is_its_own_reason(settings):
    taken = [FakeBooking(f"t{d}", MONDAY_10, doctor_id=d, status=CONFIRMED) for d in (1, 2)]
    books = FakeBookings(*taken, FakeBooking("b1", MONDAY_10))
    assert lifecycle.process(settings, "b1", Calendar(), books=books) == Step(REJECT, ("b1", lifecycle.NO_DOCTOR_FREE))


def test_a_calendar_that_does_not_answer_raises_for_a_retry(settings):
    with pytest.raises(DoctorUnavailable):
        lifecycle.process(settings, "b1", Calendar(answers=False), books=FakeBookings(FakeBooking("b1", MONDAY_10)))


def test_a_decided_or_unknown_booking_stops_the_processor(settings):
    books = FakeBookings(FakeBooking("b1", MONDAY_10, status=REJECTED))
    assert lifecycle.process(settings, "b1", Calendar(), books=books) is STOP
    assert lifecycle.process(settings, "nope", Calendar(), books=books) is STOP


def test_a_confirmation_ends_the_pipeline_and_is_announced_from_its_event_by_the_relay():
    books = FakeBookings(FakeBooking("b1", MONDAY_10))
    assert lifecycle.confirm("b1", 1, Calendar(), books=books) is STOP
    assert lifecycle.confirm("b1", 1, Calendar(), books=books) is STOP  # delivered twice: nothing more
    assert books.load("b1").status == CONFIRMED
    assert lifecycle.announced(CONFIRMED, books.load("b1")) == Step(NOTIFY, ("b1", CONFIRMED))


def test_losing_the_race_decides_again_when_any_doctor_will_do_and_rejects_when_one_was_asked():
    taken = FakeBooking("taken", MONDAY_10, doctor_id=1, status=CONFIRMED)
    books = FakeBookings(taken, FakeBooking("any", MONDAY_10), FakeBooking("asked", MONDAY_10, requested_doctor_id=1))
    assert lifecycle.confirm("any", 1, Calendar(), books=books) == Step(PROCESS, ("any",))
    assert lifecycle.confirm("asked", 1, Calendar(), books=books) == Step(REJECT, ("asked", lifecycle.SLOT_TAKEN))


def test_a_rejection_is_recorded_and_announced_from_its_event_and_a_confirmed_booking_is_not_rejected():
    books = FakeBookings(FakeBooking("b1", MONDAY_10), FakeBooking("b2", MONDAY_10, status=CONFIRMED, doctor_id=1))
    assert lifecycle.reject("b1", lifecycle.SLOT_TAKEN, books=books) is STOP
    assert books.load("b1").status == REJECTED
    assert lifecycle.announced(REJECTED, books.load("b1")) == Step(NOTIFY, ("b1", REJECTED))
    assert lifecycle.reject("b2", lifecycle.SLOT_TAKEN, books=books) is STOP
    assert books.load("b2").status == CONFIRMED
    assert lifecycle.reject("missing", lifecycle.SLOT_TAKEN, books=books) is STOP


def test_only_a_calendar_that_never_answered_rejects_after_the_last_retry():
    unanswered = lifecycle.retries_exhausted("b1", qualified_name(DoctorUnavailable))
    assert unanswered == Step(REJECT, ("b1", f"doctor unavailable after {lifecycle.MAX_RETRIES} retries"))
    assert lifecycle.retries_exhausted("b1", "builtins.RuntimeError") is STOP


def test_the_notification_is_the_final_outcome_with_a_stable_message_id(settings):
    books = FakeBookings(FakeBooking("b1", MONDAY_10, doctor_id=2, status=CONFIRMED), FakeBooking("b2", MONDAY_10))
    notice = lifecycle.notification(settings, "b1", books=books)
    assert (notice.message_id, notice.routing_key) == ("b1.confirmed", "confirmed")
    assert notice.body["doctor"] == "Dr. Luis Gómez"
    assert lifecycle.notification(settings, "b2", books=books) is None  # still pending: nothing to say


def test_a_booking_cancelled_while_it_waited_for_its_confirmation_is_left_cancelled():
    taken = FakeBooking("taken", MONDAY_10, doctor_id=1, status=CONFIRMED)
    books = FakeBookings(taken, FakeBooking("b1", MONDAY_10), FakeBooking("b2", MONDAY_10, requested_doctor_id=2))
    books.cancel("b1", "cancelled by the patient")
    books.cancel("b2", "cancelled by the patient")
    assert lifecycle.confirm("b1", 1, Calendar(), books=books) is STOP  # lost the slot, but no re-process
    assert lifecycle.confirm("b2", 2, Calendar(), books=books) is STOP
    assert lifecycle.reject("b2", lifecycle.SLOT_TAKEN, books=books) is STOP
    assert [books.load(b).status for b in ("b1", "b2")] == [CANCELLED, CANCELLED]


def test_every_final_event_goes_to_the_notifier_but_pending_and_a_swap_cancellation_do_not():
    assert lifecycle.announced(CANCELLED, FakeBooking("b1", MONDAY_10)) == Step(NOTIFY, ("b1", CANCELLED))
    assert lifecycle.announced(PENDING, FakeBooking("b1", MONDAY_10)) is STOP
    # the original of a confirmed reschedule: its cancellation travels with the new one's confirmation
    replaced = FakeBooking("old", MONDAY_10, status=CANCELLED, rescheduled_to="new")
    assert lifecycle.announced(CANCELLED, replaced) is STOP


def test_a_webhook_delivery_goes_to_the_webhooks_queue():
    assert lifecycle.deliver(7) == Step(WEBHOOKS, (7,))


def test_a_confirmed_reschedule_announces_itself_then_the_cancellation_of_the_booking_it_replaced(settings):
    original = FakeBooking("old", MONDAY_10, doctor_id=1, status=CONFIRMED)
    books = FakeBookings(original, FakeBooking("new", MONDAY_10.replace(hour=11), rescheduled_from="old"))
    assert lifecycle.confirm("new", 2, Calendar(), books=books) is STOP
    notices = lifecycle.notifications(settings, "new", CONFIRMED, books=books)
    assert [(n.message_id, n.routing_key) for n in notices] == [
        ("new.confirmed", "confirmed"),
        ("old.cancelled", "cancelled"),
    ]
    assert notices[0].body["rescheduled_from"] == "old"
    assert (notices[1].body["rescheduled_to"], notices[1].body["reason"]) == ("new", RESCHEDULED)
    # delivered again: the very same two message ids, so subscribers drop the copies
    assert lifecycle.notifications(settings, "new", CONFIRMED, books=books) == notices


def test_a_reschedule_confirmed_after_the_original_was_cancelled_does_not_announce_that_cancellation(settings):
    books = FakeBookings(
        FakeBooking("old", MONDAY_10, status=CANCELLED), FakeBooking("new", MONDAY_10, rescheduled_from="old")
    )
    assert lifecycle.confirm("new", 2, Calendar(), books=books) is STOP
    assert [n.message_id for n in lifecycle.notifications(settings, "new", CONFIRMED, books=books)] == ["new.confirmed"]
    assert books.load("old").rescheduled_to is None


def test_a_confirmation_announced_after_the_booking_was_cancelled_still_says_confirmed(settings):
    books = FakeBookings(FakeBooking("b1", MONDAY_10, doctor_id=2, status=CONFIRMED))
    books.cancel("b1", "cancelled by the patient")
    late = lifecycle.notification(settings, "b1", CONFIRMED, books=books)
    assert (late.message_id, late.body["status"], late.body["reason"]) == ("b1.confirmed", "confirmed", None)
    now = lifecycle.notification(settings, "b1", CANCELLED, books=books)
    assert (now.message_id, now.body["reason"]) == ("b1.cancelled", "cancelled by the patient")
    assert lifecycle.notification(settings, "b1", REJECTED, books=books) is None  # never was


def test_a_message_sent_before_statuses_were_named_announces_the_current_status(settings):
    books = FakeBookings(FakeBooking("b1", MONDAY_10, status=REJECTED, reason=lifecycle.SLOT_TAKEN))
    assert [n.message_id for n in lifecycle.notifications(settings, "b1", books=books)] == ["b1.rejected"]
