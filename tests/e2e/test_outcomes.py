"""Rejections, retries and a worker's death, through a real ``clinic up`` on the real broker."""

from __future__ import annotations

import os
import signal

from tests.support import Subscriber, queue_stats, slot, wait_until


def queue_counts(name: str) -> tuple[int, int]:
    """(ready, unacknowledged) messages in one queue."""
    queue = queue_stats("messages_ready", "messages_unacknowledged").get(name, {})
    return queue.get("messages_ready", 0), queue.get("messages_unacknowledged", 0)


def test_a_taken_slot_and_a_slot_outside_hours_are_rejected(clinic):
    when = slot(9, 0)
    first = clinic.book("Ana Pérez", when, doctor_id=3).json()["booking_id"]
    assert clinic.wait_final(first)["status"] == "confirmed"

    second = clinic.book("Luis Gómez", when, doctor_id=3).json()["booking_id"]
    late = clinic.book("Marta Vidal", slot(18, 0)).json()["booking_id"]
    taken, outside = clinic.wait_final(second), clinic.wait_final(late)
    assert (taken["status"], taken["reason"]) == ("rejected", "slot already taken")
    assert (outside["status"], outside["reason"]) == ("rejected", "outside the clinic's hours")
    assert [e["status"] for e in taken["history"]] == ["pending", "rejected"]


def test_a_calendar_that_never_answers_rejects_and_leaves_one_dead_letter(start_clinic, namespace):
    clinic = start_clinic(CLINIC_UNAVAILABILITY_RATE="1")
    booking_id = clinic.book().json()["booking_id"]
    final = clinic.wait_final(booking_id)
    assert (final["status"], final["reason"]) == ("rejected", "doctor unavailable after 3 retries")
    assert wait_until(lambda: queue_counts(f"{namespace}.process.XQ") == (1, 0), timeout=10, what="one dead letter")
    log = clinic.log_text()
    assert log.count("Retrying message") == 3
    assert "Ana" not in log  # patient names stay out of the logs


def test_killing_a_confirm_worker_mid_confirmation_loses_nothing_and_confirms_once(start_clinic, rabbitmq, namespace):
    clinic = start_clinic(CLINIC_CONFIRM_DELAY="4")
    [worker] = clinic.worker_pids("confirm")
    with Subscriber(rabbitmq, namespace) as subscriber:
        booking_id = clinic.book().json()["booking_id"]
        wait_until(lambda: queue_counts(f"{namespace}.confirm")[1] == 1, timeout=15, what="the confirmer to hold it")
        os.kill(worker, signal.SIGKILL)

        restarted = wait_until(
            lambda: (pids := clinic.worker_pids("confirm")) and worker not in pids and pids,
            timeout=20,
            what="a new confirm worker",
        )
        assert restarted
        final = clinic.wait_final(booking_id, timeout=60)
        wait_until(lambda: subscriber.for_booking(booking_id), timeout=15, what="the notification")
    assert final["status"] == "confirmed"
    assert [e["status"] for e in final["history"]] == ["pending", "confirmed"]
    assert {p.message_id for p, _ in subscriber.for_booking(booking_id)} == {f"{booking_id}.confirmed"}
    assert queue_counts(f"{namespace}.confirm.XQ") == (0, 0)


def test_sigint_stops_every_process_cleanly(clinic):
    pids = [clinic.process.pid, *(pid for stage in ("process", "notify") for pid in clinic.worker_pids(stage))]
    clinic.process.send_signal(signal.SIGINT)
    assert clinic.process.wait(timeout=60) == 0
    for pid in pids:
        wait_until(lambda pid=pid: not os.path.exists(f"/proc/{pid}"), timeout=10, what=f"process {pid} to exit")
    assert "all stopped" in clinic.log_text()
