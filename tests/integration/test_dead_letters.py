"""Dead letters on the real RabbitMQ: a booking whose doctor never answers dies in
``{ns}.process.XQ``; ``clinic dlq`` and ``/admin/dead-letters`` list it without removing it,
replay it once the doctors answer again (it then confirms), and purge only when told yes."""

from __future__ import annotations

import json
import subprocess
import sys
from contextlib import contextmanager

import pika

from tests.support import REPO, free_port, http, slot, wait_until
from tests.support.keys import bearer, create_key


def clinic(env, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clinic", *args],
        env=env,
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@contextmanager
def running(env, *args: str, log):
    process = subprocess.Popen([sys.executable, "-m", "clinic", *args], env=env, cwd=REPO, stdout=log, stderr=log)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(30)


def listed(env) -> list[dict]:
    result = clinic(env, "dlq", "list", "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_a_dead_booking_is_listed_kept_replayed_and_then_confirmed(clinic_env, namespace, tmp_path, rabbitmq):
    dying = {**clinic_env, "CLINIC_UNAVAILABILITY_RATE": "1"}  # the doctors' calendar never answers
    admin = bearer(create_key(clinic_env, "admin", "operator"))
    client = bearer(create_key(clinic_env, "client", "front-desk"))
    port = free_port()
    log = open(tmp_path / "processes.log", "ab")
    with running(clinic_env, "api", "--port", str(port), log=log):
        wait_until(lambda: _answers(port), timeout=30, what="the API")
        with running(dying, "worker", "process", log=log):  # the rejector is not running: it stays pending
            booked = [
                http(port, "POST", "/book", {"patient": "Ana Pérez", "slot": slot(10, 0)}, client).json()["booking_id"]
                for _ in range(3)
            ]
            letters = wait_until(lambda: len(found := listed(clinic_env)) == 3 and found, timeout=30, what="3 dead")

        assert {letter["booking_id"] for letter in letters} == set(booked)
        for letter in letters:
            assert letter["queue"] == f"{namespace}.process.XQ"
            assert letter["actor"] == "process_booking"
            assert letter["retries"] == 3
            assert letter["error"] == "clinic.errors.DoctorUnavailable"
        assert "Ana" not in json.dumps(letters)
        assert listed(clinic_env) == letters  # listing removes nothing, and keeps the order

        over_http = http(port, "GET", "/admin/dead-letters?queue=process", headers=admin)
        assert over_http.status == 200, over_http.body
        assert over_http.json()["dead_letters"] == letters
        assert http(port, "GET", "/admin/dead-letters?queue=confirm", headers=admin).json()["count"] == 0

        refused = clinic(clinic_env, "dlq", "purge", stdin="no\n")
        assert refused.returncode == 1 and "Type yes" in refused.stderr
        assert len(listed(clinic_env)) == 3

        with running(clinic_env, "worker", "process", "confirm", "notify", log=log):  # doctors answer again
            first, *rest = letters
            replayed = http(port, "POST", "/admin/dead-letters/replay", {"message_id": first["message_id"]}, admin)
            assert replayed.status == 200, replayed.body
            assert [letter["message_id"] for letter in replayed.json()["replayed"]] == [first["message_id"]]
            assert [letter["message_id"] for letter in listed(clinic_env)] == [letter["message_id"] for letter in rest]

            everything = clinic(clinic_env, "dlq", "replay", "--queue", "process", "--all")
            assert everything.returncode == 0, everything.stderr
            assert everything.stdout.count("replayed ") == 2
            assert listed(clinic_env) == []

            for booking_id in booked:
                final = wait_until(
                    lambda b=booking_id: _decided(port, b, client), timeout=30, what="the replayed booking"
                )
                assert final["status"] == "confirmed"

        missing = http(port, "POST", "/admin/dead-letters/replay", {"message_id": first["message_id"]}, admin)
        assert missing.status == 404
        assert clinic(clinic_env, "dlq", "replay", "--id", first["message_id"]).returncode == 1
    log.close()


def test_purge_deletes_only_after_yes_and_odd_messages_are_listed_safely(clinic_env, namespace, rabbitmq):
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    channel = connection.channel()
    queue = f"{namespace}.notify.XQ"
    channel.queue_declare(queue, durable=True, arguments={"x-message-ttl": 7 * 24 * 3600 * 1000})
    channel.basic_publish("", queue, b"\xff not json")
    # JSON, but not a Dramatiq message (no queue_name, no message_id): Dramatiq cannot decode it either
    channel.basic_publish("", queue, json.dumps({"actor_name": "notify_booking", "args": [{"x": 1}]}).encode())
    connection.close()

    letters = listed(clinic_env)
    assert [(letter["actor"], letter["error"]) for letter in letters] == [("?", "undecodable message")] * 2
    assert clinic(clinic_env, "dlq", "replay", "--all").stdout == ""  # nothing it can send back
    assert clinic(clinic_env, "dlq", "purge", "--queue", "notify", stdin="\n").returncode == 1
    assert len(listed(clinic_env)) == 2
    purged = clinic(clinic_env, "dlq", "purge", "--queue", "notify", stdin="yes\n")
    assert purged.returncode == 0, purged.stderr
    assert "purged 2" in purged.stdout
    assert listed(clinic_env) == []


def _answers(port: int) -> bool:
    try:
        return http(port, "GET", "/doctors", timeout=2).status == 200
    except OSError:
        return False


def _decided(port: int, booking_id: str, headers: dict[str, str]) -> dict | None:
    booking = http(port, "GET", f"/booking/{booking_id}", headers=headers).json()
    return booking if booking["status"] != "pending" else None
