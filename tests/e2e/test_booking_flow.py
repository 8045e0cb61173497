"""A booking goes through a real ``clinic up``: waitress, four dramatiq groups, RabbitMQ."""

from __future__ import annotations

import pika

from tests.support import Subscriber, http, slot, wait_until


def test_a_booking_is_accepted_at_once_then_confirmed_and_announced(clinic_on_each_database, rabbitmq, namespace):
    clinic = clinic_on_each_database
    with Subscriber(rabbitmq, namespace) as subscriber:
        when = slot(10, 30)
        response = clinic.book("Ana Pérez", when)

        assert response.status == 202
        accepted = response.json()
        assert accepted["status"] == "pending"
        assert accepted["patient"] == "Ana Pérez"
        assert response.headers["location"] == f"/booking/{accepted['booking_id']}"

        final = clinic.wait_final(accepted["booking_id"])
        assert final["status"] == "confirmed"
        assert final["doctor_id"] == 1
        assert [event["status"] for event in final["history"]] == ["pending", "confirmed"]

        wait_until(lambda: subscriber.for_booking(accepted["booking_id"]), timeout=15, what="the notification")
    [(properties, body)] = subscriber.for_booking(accepted["booking_id"])
    assert body == {
        "booking_id": accepted["booking_id"],
        "patient": "Ana Pérez",
        "slot": when.replace(" ", "T") + ":00+00:00",
        "status": "confirmed",
        "doctor_id": 1,
        "doctor": "Dr. Ana Ruiz",
        "reason": None,
        "rescheduled_from": None,
        "rescheduled_to": None,
    }
    assert properties.content_type == "application/json"
    assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
    assert properties.message_id == f"{accepted['booking_id']}.confirmed"


def test_unknown_paths_and_methods_answer_problem_json(clinic):
    missing = http(clinic.port, "GET", "/nowhere")
    wrong_method = clinic.http("DELETE", "/book")
    assert (missing.status, wrong_method.status) == (404, 405)
    for answer in (missing, wrong_method):
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["status"] == answer.status and answer.json()["type"] == "about:blank"
