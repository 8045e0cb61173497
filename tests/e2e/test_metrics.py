"""/metrics on a real ``clinic up``: scraped before and after a booking, its counters and its
histogram move; the key-less port answers the same on 127.0.0.1; each worker group exports
Dramatiq's own figures on its port."""

from __future__ import annotations

import socket

from prometheus_client.parser import text_string_to_metric_families

from clinic.config import STAGES
from tests.support import free_port, http, slot, wait_until
from tests.support.docker import listen_port
from tests.support.keys import bearer, create_key


def free_ports(count: int) -> int:
    """The first of ``count`` consecutive free ports below the ephemeral range (see ``listen_port``)."""
    while True:
        base = listen_port()
        try:
            for port in range(base + 1, base + count):
                with socket.socket() as sock:
                    sock.bind(("0.0.0.0", port))
            return base
        except OSError:
            continue


def samples(text: str) -> dict[tuple[str, tuple], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_with_a_booking_and_the_workers_export_dramatiqs_figures(start_clinic):
    metrics_port, workers_base = free_port(), free_ports(len(STAGES))
    clinic = start_clinic(CLINIC_METRICS_PORT=str(metrics_port), CLINIC_WORKER_METRICS_PORT=str(workers_base))
    admin = bearer(create_key(clinic.env, "admin", "prometheus"))
    namespace = clinic.env["CLINIC_NAMESPACE"]

    assert http(clinic.port, "GET", "/metrics").status == 401
    assert clinic.http("GET", "/metrics").status == 401  # a client key
    first = http(clinic.port, "GET", "/metrics", headers=admin)
    assert first.status == 200 and first.headers["content-type"].startswith("text/plain; version=0.0.4")
    before = samples(first.body.decode())
    assert all(name.startswith("clinic_") for name, _ in before)

    booking_id = clinic.book("Ana Pérez", slot(10, 0)).json()["booking_id"]
    assert clinic.wait_final(booking_id)["status"] == "confirmed"
    after = samples(http(clinic.port, "GET", "/metrics", headers=admin).body.decode())

    for status in ("pending", "confirmed"):
        assert (
            value(after, "clinic_bookings_total", status=status)
            == value(before, "clinic_bookings_total", status=status) + 1
        )
    count = "clinic_booking_decision_seconds_count"
    assert value(after, count, status="confirmed") == value(before, count, status="confirmed") + 1
    assert value(after, "clinic_booking_decision_seconds_bucket", status="confirmed", le="+Inf") >= 1
    book = dict(method="POST", route="/book", status="202")
    assert value(after, "clinic_http_requests_total", **book) == value(before, "clinic_http_requests_total", **book) + 1
    latency = "clinic_http_request_duration_seconds_count"
    assert value(after, latency, method="POST", route="/book") >= 1
    assert value(after, "clinic_broker_up") == 1
    assert value(after, "clinic_queue_messages", queue=f"{namespace}.process", state="ready") == 0
    assert value(after, "clinic_dead_letters", queue=f"{namespace}.process") == 0
    assert value(after, "clinic_oldest_pending_booking_age_seconds") == 0
    assert b"Ana" not in http(clinic.port, "GET", "/metrics", headers=admin).body  # no patient data

    # The key-less port: 127.0.0.1 only, the same figures.
    plain = samples(http(metrics_port, "GET", "/metrics").body.decode())
    assert value(plain, "clinic_bookings_total", status="confirmed") == value(
        after, "clinic_bookings_total", status="confirmed"
    )

    # Each worker group on its own port: Dramatiq's figures of its own actor.
    for offset, (stage, actor) in enumerate([("process", "process_booking"), ("confirm", "confirm_booking")]):

        def exported(port=workers_base + offset, queue=f"{namespace}.{stage}", actor=actor):
            try:
                found = samples(http(port, "GET", "/").body.decode())
            except OSError:
                return 0
            return value(found, "dramatiq_messages_total", queue_name=queue, actor_name=actor)

        assert wait_until(exported, timeout=30, what=f"the {stage} group's metrics") >= 1
