"""The patient's journey through a real ``clinic up`` on the real broker: free slots, cancel,
reschedule to a free or a taken slot, and a confirm worker killed during the swap."""

from __future__ import annotations

import os
import signal

from tests.e2e.test_outcomes import queue_counts
from tests.support import Subscriber, slot, wait_until


def free(clinic, when: str) -> set[tuple[str, int]]:
    day = when.split(" ")[0]
    answer = clinic.http("GET", f"/slots?from={day}&to={day}")
    assert answer.status == 200, answer.body
    return {(s["start"][:16].replace("T", " "), s["doctor_id"]) for s in answer.json()["slots"]}


def message_ids(subscriber, booking_id: str) -> list[str]:
    return [properties.message_id for properties, _ in subscriber.for_booking(booking_id)]


def story(subscriber, *announced_before: str) -> list[tuple]:
    """The notifications received, less the confirmations of bookings confirmed before the subscriber
    bound its queue: the notifier may still have been publishing those when it did."""
    early = {f"{booking_id}.confirmed" for booking_id in announced_before}
    return [(p, b) for p, b in subscriber.received if p.message_id not in early]


def confirmed(clinic, when: str, doctor_id: int) -> str:
    booking_id = clinic.book("Ana Pérez", when, doctor_id=doctor_id).json()["booking_id"]
    assert clinic.wait_final(booking_id)["status"] == "confirmed"
    return booking_id


def test_a_booked_slot_leaves_the_free_slots_and_comes_back_after_cancel(clinic_on_each_database, rabbitmq, namespace):
    clinic = clinic_on_each_database
    when = slot(9, 30)
    assert (when, 2) in free(clinic, when)
    with Subscriber(rabbitmq, namespace) as subscriber:
        booking_id = confirmed(clinic, when, 2)
        assert (when, 2) not in free(clinic, when)

        cancelled = clinic.http("POST", f"/booking/{booking_id}/cancel", {"reason": "feeling better"})
        assert cancelled.status == 200 and cancelled.json()["status"] == "cancelled"
        assert (when, 2) in free(clinic, when)
        wait_until(lambda: len(message_ids(subscriber, booking_id)) == 2, timeout=15, what="two notifications")
        again = clinic.http("POST", f"/booking/{booking_id}/cancel")
        assert again.status == 200 and again.json() == cancelled.json()
        rebooked = confirmed(clinic, when, 2)  # the slot can be had again
    assert message_ids(subscriber, booking_id) == [f"{booking_id}.confirmed", f"{booking_id}.cancelled"]
    _, body = subscriber.for_booking(booking_id)[1]
    assert (body["status"], body["reason"], body["rescheduled_to"]) == ("cancelled", "feeling better", None)
    assert clinic.booking(rebooked)["status"] == "confirmed"


def test_a_reschedule_to_a_free_slot_confirms_the_new_and_cancels_the_original(
    clinic_on_each_database, rabbitmq, namespace
):
    clinic = clinic_on_each_database
    original = confirmed(clinic, slot(10, 0), 1)
    with Subscriber(rabbitmq, namespace) as subscriber:
        moved = clinic.http("POST", f"/booking/{original}/reschedule", {"slot": slot(15, 0), "doctor_id": 2})
        assert moved.status == 202, moved.body
        new_id = moved.json()["booking_id"]
        assert clinic.wait_final(new_id)["status"] == "confirmed"
        wait_until(lambda: len(story(subscriber, original)) >= 2, timeout=15, what="two notifications")
    assert [p.message_id for p, _ in story(subscriber, original)] == [f"{new_id}.confirmed", f"{original}.cancelled"]
    (_, new_body), (_, old_body) = story(subscriber, original)
    assert new_body["rescheduled_from"] == original
    assert (old_body["reason"], old_body["rescheduled_to"]) == ("rescheduled", new_id)
    replaced = clinic.booking(original)
    assert (replaced["status"], replaced["reason"], replaced["rescheduled_to"]) == ("cancelled", "rescheduled", new_id)
    assert (slot(10, 0), 1) in free(clinic, slot(10, 0))


def test_a_reschedule_to_a_taken_slot_is_rejected_and_the_original_stays_confirmed(clinic, rabbitmq, namespace):
    original = confirmed(clinic, slot(11, 0), 1)
    taken = confirmed(clinic, slot(16, 0), 3)
    before = clinic.booking(original)
    with Subscriber(rabbitmq, namespace) as subscriber:
        moved = clinic.http("POST", f"/booking/{original}/reschedule", {"slot": slot(16, 0), "doctor_id": 3})
        new_id = moved.json()["booking_id"]
        final = clinic.wait_final(new_id)
        wait_until(lambda: story(subscriber, original, taken), timeout=15, what="the rejection")
    assert (final["status"], final["reason"]) == ("rejected", "slot already taken")
    assert clinic.booking(original) == before
    assert [p.message_id for p, _ in story(subscriber, original, taken)] == [f"{new_id}.rejected"]
    assert clinic.booking(taken)["status"] == "confirmed"


def test_a_confirm_worker_killed_during_the_swap_loses_nothing_and_swaps_once(start_clinic, rabbitmq, namespace):
    clinic = start_clinic(CLINIC_CONFIRM_DELAY="4")  # the confirmer holds each message 4 s before it commits
    original = confirmed(clinic, slot(12, 0), 1)
    [worker] = clinic.worker_pids("confirm")
    with Subscriber(rabbitmq, namespace) as subscriber:
        new_id = clinic.http("POST", f"/booking/{original}/reschedule", {"slot": slot(17, 0)}).json()["booking_id"]
        wait_until(lambda: queue_counts(f"{namespace}.confirm")[1] == 1, timeout=30, what="the confirmer to hold it")
        os.kill(worker, signal.SIGKILL)
        wait_until(
            lambda: (pids := clinic.worker_pids("confirm")) and worker not in pids, timeout=30, what="a new confirmer"
        )
        assert clinic.wait_final(new_id, timeout=90)["status"] == "confirmed"
        wait_until(lambda: len(story(subscriber, original)) >= 2, timeout=30, what="two notifications")
    assert sorted({p.message_id for p, _ in story(subscriber, original)}) == sorted(
        [f"{new_id}.confirmed", f"{original}.cancelled"]
    )
    replaced = clinic.booking(original)
    assert [e["status"] for e in replaced["history"]] == ["pending", "confirmed", "cancelled"]
    assert (replaced["reason"], replaced["rescheduled_to"]) == ("rescheduled", new_id)
    assert [e["status"] for e in clinic.booking(new_id)["history"]] == ["pending", "confirmed"]
    assert queue_counts(f"{namespace}.confirm.XQ") == (0, 0)
