"""Breaking things on purpose: killed workers, a broker that drops connections or stops, duplicate
messages, a crowd racing for one slot. Every accepted booking must end final, exactly once.

These tests restart the shared local RabbitMQ application; run them alone (CI runs the suite
serially). They are marked slow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pika
import pytest

from tests.support import Clinic, Subscriber, http, queue_stats, slot, wait_until

pytestmark = pytest.mark.slow

STAGES = ("process", "confirm", "reject", "notify")


def rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", "-q", *args], check=True, capture_output=True, timeout=120)


def unacked(queue: str) -> int:
    return queue_stats("messages_unacknowledged").get(queue, {}).get("messages_unacknowledged", 0)


@pytest.fixture
def broker_restored():
    """Whatever a test does to RabbitMQ, it is running again afterwards."""
    yield
    subprocess.run(["rabbitmqctl", "-q", "start_app"], capture_output=True, timeout=120)
    subprocess.run(["rabbitmqctl", "-q", "await_startup"], capture_output=True, timeout=120)


def requests(count: int, *, doctors: int = 3, slots: int = 20) -> list[dict]:
    assert slots <= 20, "one working day (08:00-18:00) has 20 half-hour slots"
    """``count`` booking requests spread over ``slots`` slots and ``doctors`` doctors, so that many
    ask for a (doctor, slot) another one asked for first and must be rejected as taken."""
    return [
        {
            "patient": f"Patient {n}",
            "slot": slot(8 + (n % slots) // 2, 30 * (n % slots % 2)),
            "doctor_id": 1 + n % doctors,
        }
        for n in range(count)
    ]


def distinct_slots(bodies: list[dict]) -> int:
    return len({(body["slot"], body["doctor_id"]) for body in bodies})


def book_many(clinic: Clinic, bodies: list[dict], *, threads: int = 8) -> list[str]:
    def one(body: dict) -> str:
        response = clinic.http("POST", "/book", body)
        assert response.status == 202, response.body
        return response.json()["booking_id"]

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, bodies))


def assert_all_final_exactly_once(clinic: Clinic, booking_ids: list[str], timeout: float = 120) -> dict[str, int]:
    """Every booking ends confirmed or rejected with exactly one status change; returns the tally."""
    deadline = time.monotonic() + timeout
    finals = {}
    for booking_id in booking_ids:
        finals[booking_id] = clinic.wait_final(booking_id, timeout=max(1, deadline - time.monotonic()))
    for booking_id, booking in finals.items():
        assert [e["status"] for e in booking["history"]] == ["pending", booking["status"]], booking_id
    tally = {"confirmed": 0, "rejected": 0}
    for booking in finals.values():
        tally[booking["status"]] += 1
    return tally


def test_kill_9_of_each_worker_kind_while_it_holds_messages_loses_nothing(start_clinic, namespace, database_url):
    clinic = start_clinic(CLINIC_SWEEP_AFTER="5", CLINIC_DATABASE_URL=database_url)
    # Freeze every worker, so that what RabbitMQ hands one stays in its hands until it is killed;
    # the pipeline then moves one stage at a time, and each stage's worker dies holding messages.
    frozen = {stage: clinic.worker_pids(stage)[0] for stage in STAGES}
    for pid in frozen.values():
        os.kill(pid, signal.SIGSTOP)
    bodies = requests(120)
    booking_ids = book_many(clinic, bodies)
    for stage in STAGES:
        queue = f"{namespace}.{stage}"
        wait_until(
            lambda queue=queue: unacked(queue) > 0, timeout=60, interval=0.05, what=f"the {stage} worker to hold one"
        )
        os.kill(frozen[stage], signal.SIGKILL)
    tally = assert_all_final_exactly_once(clinic, booking_ids, timeout=120)
    assert tally == {"confirmed": distinct_slots(bodies), "rejected": len(bodies) - distinct_slots(bodies)}
    for stage, pid in frozen.items():
        assert pid not in clinic.worker_pids(stage), f"{stage} worker was not replaced"
    # Each group's exit is logged once its Dramatiq main process has shut down, which can come
    # after the last booking was decided.
    wait_until(lambda: clinic.log_text().count("exited with") >= len(STAGES), timeout=30, what="every group's exit")


def test_broker_dropping_connections_and_restarting_with_200_in_flight_loses_nothing(
    start_clinic, broker_restored, database_url
):
    clinic = start_clinic(CLINIC_SWEEP_AFTER="5", CLINIC_CONFIRM_DELAY="0.01", CLINIC_DATABASE_URL=database_url)
    bodies = requests(200)
    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(book_many, clinic, bodies[:100])
        time.sleep(0.5)
        rabbitmqctl("close_all_connections", "fault test: connections dropped")
        booking_ids = first.result()
    rabbitmqctl("stop_app")
    booking_ids += book_many(clinic, bodies[100:150])  # accepted while the broker is down
    assert http(clinic.port, "GET", "/health").status == 503
    time.sleep(2)
    rabbitmqctl("start_app")
    rabbitmqctl("await_startup")
    booking_ids += book_many(clinic, bodies[150:])
    assert len(set(booking_ids)) == 200

    tally = assert_all_final_exactly_once(clinic, booking_ids, timeout=240)
    assert tally == {"confirmed": distinct_slots(bodies), "rejected": 200 - distinct_slots(bodies)}
    wait_until(lambda: http(clinic.port, "GET", "/health").status == 200, timeout=30, what="the API to reconnect")


def test_bookings_accepted_while_the_broker_is_down_are_held_by_the_api_and_finished(start_clinic, broker_restored):
    clinic = start_clinic(CLINIC_SWEEP_AFTER="120")  # the sweeper stays out of it
    rabbitmqctl("stop_app")
    accepted = [clinic.book(f"Patient {n}", slot(10 + n)) for n in range(5)]
    assert [r.status for r in accepted] == [202] * 5
    health = http(clinic.port, "GET", "/health")
    assert health.status == 503 and health.json()["failing"] == ["broker"]
    assert all(clinic.booking(r.json()["booking_id"])["status"] == "pending" for r in accepted)

    rabbitmqctl("start_app")
    rabbitmqctl("await_startup")
    tally = assert_all_final_exactly_once(clinic, [r.json()["booking_id"] for r in accepted], timeout=90)
    assert tally == {"confirmed": 5, "rejected": 0}
    assert "re-sent" not in clinic.log_text()  # the API's send relay published them itself


def test_bookings_held_by_an_api_killed_while_the_broker_was_down_are_swept(start_clinic, broker_restored):
    clinic = start_clinic(CLINIC_SWEEP_AFTER="3")
    rabbitmqctl("stop_app")
    accepted = [clinic.book(f"Patient {n}", slot(10 + n)) for n in range(5)]
    assert [r.status for r in accepted] == [202] * 5
    [api] = clinic.api_pids()
    os.kill(api, signal.SIGKILL)  # its relay dies holding the five steps: only the rows remain
    rabbitmqctl("start_app")
    rabbitmqctl("await_startup")
    wait_until(lambda: clinic.api_pids() not in ([], [api]), timeout=30, what="the API to be restarted")
    tally = assert_all_final_exactly_once(clinic, [r.json()["booking_id"] for r in accepted], timeout=90)
    assert tally == {"confirmed": 5, "rejected": 0}
    assert "re-sent" in clinic.log_text()  # by the sweeper, from the rows alone


def test_a_message_delivered_twice_on_purpose_has_no_double_effect(clinic, rabbitmq, namespace):
    with Subscriber(rabbitmq, namespace) as subscriber:
        booking_id = clinic.book().json()["booking_id"]
        first = clinic.wait_final(booking_id)
        wait_until(lambda: subscriber.for_booking(booking_id), timeout=15, what="the first notification")

        connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
        channel = connection.channel()
        channel.confirm_delivery()
        copies = {
            "process": ("process_booking", [booking_id]),
            "confirm": ("confirm_booking", [booking_id, first["doctor_id"]]),
            "reject": ("reject_booking", [booking_id, "slot already taken"]),
            "notify": ("notify_booking", [booking_id]),
        }
        for stage, (actor, args) in copies.items():
            body = json.dumps(
                {
                    "queue_name": f"{namespace}.{stage}",
                    "actor_name": actor,
                    "args": args,
                    "kwargs": {},
                    "options": {},
                    "message_id": str(uuid.uuid4()),
                    "message_timestamp": int(time.time() * 1000),
                }
            )
            for _ in range(2):  # the very same message, twice
                channel.basic_publish("", f"{namespace}.{stage}", body, pika.BasicProperties(delivery_mode=2))
        connection.close()

        # The confirmer and the rejector no longer announce (the relay does, once per event), so the
        # re-published notifications are the two copies of notify_booking's message: 1 + 2.
        wait_until(lambda: len(subscriber.for_booking(booking_id)) >= 3, timeout=20, what="re-published notifications")
    after = clinic.booking(booking_id)
    assert after["status"] == "confirmed"
    assert after["history"] == first["history"]
    assert after["updated_at"] == first["updated_at"]
    assert {p.message_id for p, _ in subscriber.for_booking(booking_id)} == {f"{booking_id}.confirmed"}


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgresql)])
def test_fifty_patients_racing_for_one_slot_get_one_confirmation(start_clinic, database, request):
    url = request.getfixturevalue("sqlite_url" if database == "sqlite" else "postgres_url")
    clinic = start_clinic(CLINIC_DATABASE_URL=url, CLINIC_WORKER_PROCESSES="2", CLINIC_CONFIRM_DELAY="0-0.05")
    when = slot(11, 0)

    def one(n: int) -> str:
        response = clinic.book(f"Patient {n}", when, doctor_id=2)
        assert response.status == 202, response.body
        return response.json()["booking_id"]

    with ThreadPoolExecutor(25) as pool:
        booking_ids = list(pool.map(one, range(50)))
    tally = assert_all_final_exactly_once(clinic, booking_ids)
    assert tally == {"confirmed": 1, "rejected": 49}
