"""Webhooks end to end: ``clinic up`` on the real broker posting to real receivers on 127.0.0.1;
signatures checked with the ``standardwebhooks`` package."""

from __future__ import annotations

import pytest
from standardwebhooks.webhooks import Webhook

from clinic.broker.deadletters import DeadLetters
from clinic.config import Settings
from tests.support import wait_until
from tests.support.receiver import Receiver


@pytest.fixture
def clinic(start_clinic):
    return start_clinic(CLINIC_WEBHOOK_ALLOW_PRIVATE="1", CLINIC_WEBHOOK_MIN_BACKOFF_MS="200")


def register(clinic, url, events=("booking.confirmed",)):
    made = clinic.http("POST", "/webhooks", {"url": url, "events": list(events)})
    assert made.status == 201, made.body
    return made.json()


def deliveries(clinic, webhook_id, status=None):
    path = f"/webhooks/{webhook_id}/deliveries" + (f"?status={status}" if status else "")
    return clinic.http("GET", path).json()["deliveries"]


def test_a_confirmation_reaches_the_receiver_signed_and_a_flaky_one_gets_it_on_the_third_try(clinic):
    with Receiver() as good, Receiver(500, 500) as flaky:
        secret = register(clinic, good.url)["secret"]
        flaky_hook = register(clinic, flaky.url)
        booking_id = clinic.book().json()["booking_id"]
        assert clinic.wait_final(booking_id)["status"] == "confirmed"
        wait_until(lambda: good.received and len(flaky.received) >= 3, timeout=60, what="the deliveries")
        headers, body = good.received[0]
        payload = Webhook(secret).verify(body, headers)
        assert (payload["type"], payload["data"]["booking_id"]) == ("booking.confirmed", booking_id)
        assert len(good.received) == 1
        assert len(set(flaky.ids())) == 1 and len(flaky.received) == 3
        [logged] = wait_until(lambda: deliveries(clinic, flaky_hook["id"], "delivered"), timeout=30)
        assert (logged["attempts"], logged["last_response"]) == (3, 200)


def test_a_receiver_that_always_fails_ends_failed_and_dead_lettered_and_a_replay_delivers_it(clinic):
    with Receiver(default=503) as down, Receiver(410) as gone:
        hook = register(clinic, down.url)
        gone_hook = register(clinic, gone.url)
        booking_id = clinic.book().json()["booking_id"]
        clinic.wait_final(booking_id)
        [failed] = wait_until(lambda: deliveries(clinic, hook["id"], "failed"), timeout=90, what="the failure")
        assert (failed["attempts"], failed["last_response"]) == (4, 503)  # the first try and 3 retries
        settings = Settings.from_env(clinic.env)
        letters = wait_until(lambda: DeadLetters(settings).list("webhooks"), timeout=30, what="the dead letter")
        assert [letter.actor for letter in letters] == ["deliver_webhook"]
        shown = clinic.http("GET", f"/webhooks/{gone_hook['id']}").json()
        assert (shown["status"], shown["disabled_reason"]) == ("disabled", "the endpoint answered 410 Gone")

        down.answer_with(204)
        replay = clinic.http("POST", f"/webhooks/{hook['id']}/deliveries/{failed['id']}/replay")
        assert replay.status == 202, replay.body
        wait_until(lambda: deliveries(clinic, hook["id"], "delivered"), timeout=30, what="the replay")
        assert len(set(down.ids())) == 1 and len(down.received) == 5


def test_a_private_url_is_refused_without_the_override(start_clinic):
    clinic = start_clinic()
    refused = clinic.http("POST", "/webhooks", {"url": "http://127.0.0.1:9/hook", "events": ["booking.confirmed"]})
    assert (refused.status, refused.json()["field"]) == (422, "url")
