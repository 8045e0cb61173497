"""The API's keys, idempotency and admin endpoints, driven through Falcon's TestClient."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace

import pytest
from falcon import testing

from api.app import create_app
from clinic import keys, store
from clinic.broker.deadletters import DeadLetters
from clinic.config import Settings
from tests.support import free_port, slot


@pytest.fixture
def database(sqlite_url):
    """The models on a SQLite file; the app opens and closes its connection per request and the
    test's own queries connect on demand (Peewee's autoconnect)."""
    store.connect(sqlite_url)
    store.create_schema()
    yield
    if not store.database.is_closed():
        store.database.close()


def make_client(settings, *, dead_letters=None):
    sent: list[str] = []
    app = create_app(settings, dispatch=lambda step: sent.append(step.args[0]), checks={}, dead_letters=dead_letters)
    client = testing.TestClient(app)
    client.sent = sent
    return client


@pytest.fixture
def ns_settings(namespace) -> Settings:
    return Settings.from_env({"CLINIC_NAMESPACE": namespace, "CLINIC_RATE_LIMIT": "0"})


@pytest.fixture
def client_key(database) -> dict[str, str]:
    return auth(keys.create_key("front-desk", "client").token)


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def body(**fields):
    return {"patient": "Ana Pérez", "slot": slot(10, 0), **fields}


def test_by_default_a_booking_needs_a_client_key_even_before_any_exists(database, ns_settings):
    client = make_client(ns_settings)
    for answer in (client.simulate_post("/book", json=body()), client.simulate_get(f"/booking/{uuid.uuid4()}")):
        assert answer.status_code == 401
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json == {
            "type": "about:blank",
            "title": "Unauthorized",
            "status": 401,
            "detail": "a client, staff or admin API key is required",
        }
    assert client.sent == [] and store.Booking.select().count() == 0


def test_in_open_mode_a_booking_needs_no_key_but_a_key_sent_is_still_checked(database, ns_settings):
    client = make_client(replace(ns_settings, open_access=True))
    created = client.simulate_post("/book", json=body())
    assert created.status_code == 202
    assert client.simulate_get(created.headers["location"]).status_code == 200
    assert store.Booking.get_by_id(created.json["booking_id"]).owner is None

    alice = keys.create_key("alice", "client").token
    assert client.simulate_post("/book", json=body(), headers=auth(alice + "x")).status_code == 401
    assert client.simulate_post("/book", json=body(), headers={"Authorization": "Basic YTpi"}).status_code == 401
    owned = client.simulate_post("/book", json=body(), headers=auth(alice))
    assert store.Booking.get_by_id(owned.json["booking_id"]).owner == alice.split("_")[1]
    assert client.simulate_get(owned.headers["location"], headers=auth(alice)).status_code == 200
    assert client.sent == [created.json["booking_id"], owned.json["booking_id"]]


def test_a_booking_needs_a_client_key_and_belongs_to_it(database, ns_settings):
    alice, bob = keys.create_key("alice", "client").token, keys.create_key("bob", "client").token
    admin = keys.create_key("ops", "admin").token
    client = make_client(ns_settings)

    refused = client.simulate_post("/book", json=body())
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="clinic"'
    assert refused.json["title"] == "Unauthorized"
    wrong = client.simulate_post("/book", json=body(), headers=auth(alice + "x"))
    assert wrong.headers["www-authenticate"] == 'Bearer realm="clinic", error="invalid_token"'
    assert client.simulate_post("/book", json=body(), headers=auth(admin)).status_code == 202  # admin >= staff

    created = client.simulate_post("/book", json=body(), headers=auth(alice))
    assert created.status_code == 202
    path = created.headers["location"]
    assert store.Booking.get_by_id(created.json["booking_id"]).owner == alice.split("_")[1]
    assert client.simulate_get(path, headers=auth(alice)).status_code == 200
    assert client.simulate_get(path, headers=auth(bob)).status_code == 404
    assert client.simulate_get(path).status_code == 401
    assert client.sent[-1] == created.json["booking_id"]


@pytest.mark.parametrize("path", ["/admin/dead-letters", "/admin/dead-letters/replay", "/admin", "/admin/x/y"])
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE", "OPTIONS"])
def test_admin_paths_answer_401_without_an_admin_key_whatever_the_path_or_method(database, ns_settings, path, method):
    client_token = keys.create_key("app", "client").token
    client = make_client(ns_settings)
    for headers in ({}, auth(client_token), {"Authorization": "Bearer"}, {"Authorization": "Basic YTpi"}):
        answer = client.simulate_request(method, path, headers=headers)
        assert answer.status_code == 401, (headers, answer.status_code)
        assert answer.headers["www-authenticate"].startswith("Bearer")


def test_an_admin_key_lists_and_replays_dead_letters(database, ns_settings):
    admin = auth(keys.create_key("ops", "admin").token)
    client = make_client(ns_settings)
    listing = client.simulate_get("/admin/dead-letters", headers=admin)
    assert listing.status_code == 200
    assert listing.json == {"dead_letters": [], "count": 0, "retention_days": 7}
    assert (
        client.simulate_get("/admin/dead-letters", params={"queue": "billing"}, headers=admin).json["field"] == "queue"
    )
    everything = client.simulate_post("/admin/dead-letters/replay", json={"all": True}, headers=admin)
    assert everything.json == {"replayed": [], "count": 0}
    missing = client.simulate_post("/admin/dead-letters/replay", json={"message_id": "nope"}, headers=admin)
    assert missing.status_code == 404
    assert client.simulate_get("/admin/nowhere", headers=admin).status_code == 404


@pytest.mark.parametrize(
    "request_body, field",
    [
        ({}, "message_id"),
        ({"all": True, "message_id": "m"}, "message_id"),
        ({"all": "yes"}, "all"),
        ({"all": 1}, "all"),
        ({"all": True, "queue": None}, "queue"),
        ({"all": True, "queue": "billing"}, "queue"),
        ({"message_id": None}, "message_id"),
        ({"message_id": "m" * 65}, "message_id"),
        ({"all": True, "force": True}, "force"),
        ([], "body"),
    ],
)
def test_a_bad_replay_request_names_its_field(database, ns_settings, request_body, field):
    admin = auth(keys.create_key("ops", "admin").token)
    answer = make_client(ns_settings).simulate_post("/admin/dead-letters/replay", json=request_body, headers=admin)
    assert answer.status_code == 422
    assert answer.json["field"] == field


def test_the_dead_letter_endpoints_answer_503_when_rabbitmq_does_not(database):
    settings = Settings.from_env({"CLINIC_BROKER_URL": f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"})
    admin = auth(keys.create_key("ops", "admin").token)
    answer = make_client(settings, dead_letters=DeadLetters(settings)).simulate_get(
        "/admin/dead-letters", headers=admin
    )
    assert answer.status_code == 503
    assert answer.json["title"] == "Service Unavailable"
    assert answer.headers["retry-after"] == "5"


def test_an_idempotent_request_is_answered_the_same_and_dispatched_once(ns_settings, client_key):
    client = make_client(ns_settings)
    headers = {"Idempotency-Key": "order-42", **client_key}
    first = client.simulate_post("/book", json=body(), headers=headers)
    again = client.simulate_post("/book", json=body(), headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json == first.json and again.headers["location"] == first.headers["location"]
    assert again.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert client.sent == [first.json["booking_id"]]

    other = client.simulate_post("/book", json=body(doctor_id=1), headers=headers)
    assert other.status_code == 422
    assert other.json["header"] == "Idempotency-Key"


@pytest.mark.parametrize("value", ["k" * 256, "a b", "caf\u00e9"])
def test_a_bad_idempotency_key_is_400_naming_the_header(ns_settings, client_key, value):
    headers = {"Idempotency-Key": value, **client_key}
    answer = make_client(ns_settings).simulate_post("/book", json=body(), headers=headers)
    assert answer.status_code == 400
    assert answer.json["header"] == "Idempotency-Key"
    assert store.Booking.select().count() == 0


@pytest.mark.parametrize("field", ["status", "doctor", "booking_id", "owner", "reason", "created_at", "history"])
def test_a_client_cannot_set_a_server_owned_field(ns_settings, client_key, field):
    answer = make_client(ns_settings).simulate_post("/book", json=body(**{field: "x"}), headers=client_key)
    assert answer.status_code == 422
    assert answer.json["field"] == field
    assert store.Booking.select().count() == 0


@pytest.mark.parametrize("path", ["/book", "/admin/dead-letters/replay"])
def test_a_body_above_the_limit_is_413_problem_json(database, ns_settings, path):
    admin = auth(keys.create_key("ops", "admin").token)
    oversized = b'{"patient": "' + b"x" * (64 * 1024) + b'"}'
    answer = make_client(ns_settings).simulate_post(
        path, body=oversized, headers={"Content-Type": "application/json", **admin}
    )
    assert answer.status_code == 413
    assert answer.headers["content-type"] == "application/problem+json"
    assert answer.json["status"] == 413 and answer.json["detail"].startswith("the body must be at most")


def test_an_unexpected_error_is_a_bare_500_that_names_no_patient(database, ns_settings, caplog):
    def explode(booking_id):
        raise RuntimeError("Ana Pérez")

    app = create_app(ns_settings, dispatch=explode, checks={})
    app.add_route("/boom", Boom())
    with caplog.at_level(logging.INFO):
        answer = testing.TestClient(app).simulate_get("/boom")
    assert answer.status_code == 500
    assert answer.json == {
        "type": "about:blank",
        "title": "Internal Server Error",
        "status": 500,
        "detail": "the request could not be completed",
    }
    assert "Ana" not in caplog.text and "Traceback" not in caplog.text


class Boom:
    def on_get(self, req, resp):
        raise ValueError("patient Ana Pérez")
