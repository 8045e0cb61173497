"""Webhooks through Falcon's TestClient and ``clinic.webhooks`` on a SQLite file, posting to a real
HTTP receiver on 127.0.0.1; every signature is checked with the ``standardwebhooks`` package."""

from __future__ import annotations

import json
import re
import stat

import pytest
from falcon import testing
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from api.app import create_app
from api.stream import StreamSlots
from clinic import bookings, events, keys, secretbox, store, webhooks
from clinic.config import Settings
from clinic.errors import DeliveryRetry
from clinic.secretbox import SecretBox
from clinic.store import WebhookDelivery, WebhookEndpoint
from tests.support import slot
from tests.support.receiver import Receiver

SECRET_KEY = "test-secret-key-" + "x" * 32


def settings_for(**env: str) -> Settings:
    return Settings.from_env(
        {
            "CLINIC_RATE_LIMIT": "0",
            "CLINIC_SECRET_KEY": SECRET_KEY,
            "CLINIC_WEBHOOK_ALLOW_PRIVATE": "1",
            "CLINIC_WEBHOOK_MIN_BACKOFF_MS": "100",
            "CLINIC_WEBHOOK_MAX_BACKOFF_MS": "1000",
            **env,
        }
    )


@pytest.fixture
def api(sqlite_url):
    store.connect(sqlite_url)
    store.create_schema()
    settings = settings_for()
    client = testing.TestClient(create_app(settings, dispatch=lambda step: None, checks={}))
    client.settings, client.box = settings, SecretBox(SECRET_KEY)
    client.keys = {
        name: {"Authorization": f"Bearer {keys.create_key(name, scope).token}"}
        for name, scope in (("front", "client"), ("other", "client"), ("ops", "admin"))
    }
    yield client
    if not store.database.is_closed():
        store.database.close()


def register(api, url, key="front", events=("booking.confirmed", "booking.cancelled")):
    answer = api.simulate_post("/webhooks", json={"url": url, "events": list(events)}, headers=api.keys[key])
    assert answer.status_code == 201, answer.json
    return answer.json


def owner_of(api, key):
    return keys.authenticate(api.keys[key]["Authorization"].split()[1], keys.SCOPES[key == "ops"]).key_id


def booking_events(api, key="front", cancel=True):
    """A booking of ``key``'s, confirmed then cancelled: its events, relayed to the endpoints."""
    booking = bookings.request_booking(
        api.settings, {"patient": "Ana Pérez", "slot": slot(10)}, owner=owner_of(api, key)
    )
    bookings.confirm(booking.id, 1)
    if cancel:
        bookings.cancel(booking.id)
    return booking, webhooks.fan_out(events.unrelayed())


def verify(secret, headers, body):
    return Webhook(secret).verify(body, headers)


def test_a_registered_endpoint_gets_each_event_signed_as_the_standard_says(api):
    with Receiver() as receiver:
        made = register(api, receiver.url)
        assert made["secret"].startswith("whsec_") and made["status"] == "enabled"
        assert "secret" not in api.simulate_get(f"/webhooks/{made['id']}", headers=api.keys["front"]).json
        booking, deliveries = booking_events(api)
        assert len(deliveries) == 2  # confirmed and cancelled; pending was not asked for
        for delivery_id in deliveries:
            assert webhooks.attempt(api.settings, api.box, delivery_id) == "delivered"
        assert webhooks.attempt(api.settings, api.box, deliveries[0]) is None  # delivered twice: sent once
    [(first_headers, first), (_, second)] = receiver.received
    payload = verify(made["secret"], first_headers, first)
    assert payload["type"] == "booking.confirmed" and payload["data"]["status"] == "confirmed"
    assert payload["data"]["booking_id"] == booking.id and payload["data"]["patient"] == "Ana Pérez"
    assert set(payload) == {"type", "timestamp", "data"} and "history" not in payload["data"]
    assert verify(made["secret"], receiver.received[1][0], second)["type"] == "booking.cancelled"
    with pytest.raises(WebhookVerificationError):
        verify(webhooks.new_secret(), first_headers, first)
    log = api.simulate_get(f"/webhooks/{made['id']}/deliveries", headers=api.keys["front"]).json
    assert [(d["type"], d["status"], d["attempts"], d["last_response"]) for d in log["deliveries"]] == [
        ("booking.cancelled", "delivered", 1, 200),
        ("booking.confirmed", "delivered", 1, 200),
    ]


def test_a_client_endpoint_hears_only_its_own_bookings_and_an_admin_one_hears_all(api):
    with Receiver() as front, Receiver() as ops:
        register(api, front.url, "front")
        register(api, ops.url, "ops")
        _, for_other = booking_events(api, "other", cancel=False)
        assert len(for_other) == 1  # only the admin's endpoint
        assert WebhookDelivery.get_by_id(for_other[0]).endpoint.owner != "front"


def test_another_keys_endpoint_is_404_and_a_private_url_is_refused_without_the_override(api, sqlite_url):
    made = register(api, "http://127.0.0.1:9/x")
    for method in ("simulate_get", "simulate_delete"):
        assert getattr(api, method)(f"/webhooks/{made['id']}", headers=api.keys["other"]).status_code == 404
    assert api.simulate_get("/webhooks", headers=api.keys["other"]).json == {"webhooks": []}
    strict = testing.TestClient(create_app(settings_for(CLINIC_WEBHOOK_ALLOW_PRIVATE="0"), dispatch=print, checks={}))
    for url in ("http://127.0.0.1:8080/x", "http://10.1.2.3/x", "http://[::1]/x", "http://169.254.169.254/x"):
        refused = strict.simulate_post(
            "/webhooks", json={"url": url, "events": ["booking.confirmed"]}, headers=api.keys["front"]
        )
        assert (refused.status_code, refused.json["field"]) == (422, "url"), url
    ftp = strict.simulate_post(
        "/webhooks", json={"url": "ftp://x/", "events": ["booking.confirmed"]}, headers=api.keys["front"]
    )
    assert ftp.status_code == 422
    # and again at delivery: an endpoint stored while the override was on is refused without it
    _, [delivery] = booking_events(api, cancel=False)
    assert webhooks.attempt(settings_for(CLINIC_WEBHOOK_ALLOW_PRIVATE="0"), api.box, delivery) == "failed"
    assert WebhookDelivery.get_by_id(delivery).last_response == "RefusedAddress"


def test_5xx_and_429_are_retried_honouring_retry_after_and_other_4xx_fail_at_once(api):
    with Receiver(500, 429, 404, headers={"Retry-After": "7"}) as receiver:
        register(api, receiver.url, events=("booking.confirmed",))
        _, [delivery] = booking_events(api, cancel=False)
        with pytest.raises(DeliveryRetry) as first:
            webhooks.attempt(api.settings, api.box, delivery)
        assert (first.value.response, first.value.delay_ms) == ("500", 1000)  # Retry-After 7 s, capped at the max
        with pytest.raises(DeliveryRetry):
            webhooks.attempt(api.settings, api.box, delivery)
        assert webhooks.attempt(api.settings, api.box, delivery) == "failed"
    row = WebhookDelivery.get_by_id(delivery)
    assert (row.status, row.attempts, row.last_response) == ("failed", 3, "404")
    assert len(set(receiver.ids())) == 1  # the same webhook-id on every attempt


def test_410_disables_the_endpoint_and_twenty_failed_deliveries_in_a_row_do_too(api):
    with Receiver(410) as gone:
        made = register(api, gone.url, events=("booking.confirmed",))
        _, [delivery] = booking_events(api, cancel=False)
        assert webhooks.attempt(api.settings, api.box, delivery) == "failed"
    shown = api.simulate_get(f"/webhooks/{made['id']}", headers=api.keys["front"]).json
    assert (shown["status"], shown["disabled_reason"]) == ("disabled", webhooks.GONE)

    with Receiver(default=400) as broken:
        flaky = register(api, broken.url, events=("booking.pending",))
        for _ in range(webhooks.FAILURES_TO_DISABLE):
            booking = bookings.request_booking(
                api.settings, {"patient": "Ana Pérez", "slot": slot(11)}, owner=owner_of(api, "front")
            )
            [delivery] = webhooks.fan_out([(e, b) for e, b in events.unrelayed() if b.id == booking.id])
            webhooks.attempt(api.settings, api.box, delivery)
    shown = api.simulate_get(f"/webhooks/{flaky['id']}", headers=api.keys["front"]).json
    assert (shown["status"], shown["disabled_reason"]) == ("disabled", webhooks.TOO_MANY_FAILURES)
    enabled = api.simulate_patch(f"/webhooks/{flaky['id']}", json={"status": "enabled"}, headers=api.keys["front"])
    assert (enabled.json["status"], enabled.json["disabled_reason"]) == ("enabled", None)


def test_a_rotated_secret_signs_beside_the_old_one_and_a_replay_keeps_the_webhook_id(api):
    with Receiver() as receiver:
        made = register(api, receiver.url, events=("booking.confirmed",))
        rotated = api.simulate_post(f"/webhooks/{made['id']}/rotate-secret", headers=api.keys["front"]).json
        assert rotated["secret"] != made["secret"]
        _, [delivery] = booking_events(api, cancel=False)
        webhooks.attempt(api.settings, api.box, delivery)
        replayed = api.simulate_post(f"/webhooks/{made['id']}/deliveries/{delivery}/replay", headers=api.keys["front"])
        assert (replayed.status_code, replayed.json["status"]) == (202, "pending")
        webhooks.attempt(api.settings, api.box, delivery)
    headers, body = receiver.received[0]
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert verify(made["secret"], headers, body) == verify(rotated["secret"], headers, body)
    assert len(receiver.received) == 2 and len(set(receiver.ids())) == 1


def test_a_secret_is_stored_sealed_and_does_not_open_with_another_key_or_on_another_row(api):
    made = register(api, "http://127.0.0.1:9/x")
    row = WebhookEndpoint.get_by_id(made["id"])
    assert made["secret"] not in json.dumps(list(WebhookEndpoint.select().dicts()), default=str)
    assert api.box.open(row.secret, bound_to=row.id) == made["secret"]
    with pytest.raises(ValueError):
        SecretBox("another-key-" + "y" * 32).open(row.secret, bound_to=row.id)
    with pytest.raises(ValueError):
        api.box.open(row.secret, bound_to="we_another")


def test_the_key_file_is_generated_once_with_mode_0600(tmp_path):
    settings = Settings.from_env({"CLINIC_DATA_DIR": str(tmp_path)})
    made = secretbox.ensure_secret_key(settings)
    assert made == tmp_path / "secret.key" and stat.S_IMODE(made.stat().st_mode) == 0o600
    key = secretbox.secret_key(settings)
    assert secretbox.ensure_secret_key(settings) is None and secretbox.secret_key(settings) == key


def test_metrics_count_webhook_deliveries_by_outcome_and_open_streams(api):
    def figures():
        scraped = api.simulate_get("/metrics", headers=api.keys["ops"])
        assert scraped.status_code == 200
        found = re.findall(r'^clinic_webhook_deliveries\{status="(\w+)"\} (\S+)$', scraped.text, re.M)
        streams = re.search(r"^clinic_event_streams_open (\S+)$", scraped.text, re.M)
        return {status: float(count) for status, count in found}, float(streams.group(1))

    assert figures() == ({"pending": 0, "delivered": 0, "failed": 0}, 0)
    with Receiver(200, 404) as receiver:
        register(api, receiver.url)
        _, [confirmed, cancelled] = booking_events(api)
        assert figures()[0] == {"pending": 2, "delivered": 0, "failed": 0}
        assert webhooks.attempt(api.settings, api.box, confirmed) == "delivered"
        assert webhooks.attempt(api.settings, api.box, cancelled) == "failed"
    assert figures()[0] == {"pending": 0, "delivered": 1, "failed": 1}
    slots = StreamSlots(2)
    assert slots.take()
    assert figures()[1] == 1
    slots.give()
    assert figures()[1] == 0
