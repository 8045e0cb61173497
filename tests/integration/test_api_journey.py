"""The patient's journey over HTTP (Falcon's TestClient, a SQLite file): free slots, cancel,
reschedule and the listing, their errors as problem+json, and their place in /openapi.json."""

from __future__ import annotations

import pytest
from falcon import testing

from api.app import create_app
from clinic import bookings, events, keys, store
from clinic.config import Settings
from clinic.lifecycle import Step
from tests.support import slot


@pytest.fixture
def api(sqlite_url):
    store.connect(sqlite_url)
    store.create_schema()
    settings = Settings.from_env({"CLINIC_RATE_LIMIT": "0", "CLINIC_DOCTORS": "Dr. A;Dr. B"})
    sent: list[Step] = []
    client = testing.TestClient(create_app(settings, dispatch=sent.append, checks={}))
    client.sent = sent
    client.keys = {
        name: {"Authorization": f"Bearer {keys.create_key(name, scope).token}"}
        for name, scope in (("front", "client"), ("other", "client"), ("ops", "admin"))
    }
    yield client
    if not store.database.is_closed():
        store.database.close()


def book(api, when=None, key="front", **fields):
    answer = api.simulate_post(
        "/book", json={"patient": "Ana Pérez", "slot": when or slot(10, 0), **fields}, headers=api.keys[key]
    )
    assert answer.status_code == 202, answer.json
    return answer.json["booking_id"]


def day(when: str) -> str:
    return when.split(" ")[0]


def free(api, when: str) -> set[tuple[str, int]]:
    answer = api.simulate_get("/slots", params={"from": day(when), "to": day(when)}, headers=api.keys["front"])
    assert answer.status_code == 200, answer.json
    assert answer.headers["cache-control"] == "no-store"
    return {(s["start"][:16].replace("T", " "), s["doctor_id"]) for s in answer.json["slots"]}


def test_a_booked_slot_leaves_the_free_slots_and_comes_back_after_cancel(api):
    when = slot(10, 0)
    assert {(when, 1), (when, 2)} <= free(api, when)
    booking_id = book(api, when, doctor_id=1)
    assert (when, 1) not in free(api, when) and (when, 2) in free(api, when)

    cancelled = api.simulate_post(f"/booking/{booking_id}/cancel", headers=api.keys["front"])
    assert cancelled.status_code == 200, cancelled.json
    assert (cancelled.json["status"], cancelled.json["reason"]) == ("cancelled", "cancelled by the patient")
    assert [e["status"] for e in cancelled.json["history"]] == ["pending", "cancelled"]
    assert (when, 1) in free(api, when)
    # the cancellation is an event committed with it: the relay announces it, the API sends nothing
    assert api.sent == [Step("process", (booking_id,))]
    assert [e.status for e, _ in events.unrelayed()] == ["pending", "cancelled"]

    again = api.simulate_post(f"/booking/{booking_id}/cancel", json={"reason": "twice"}, headers=api.keys["front"])
    assert again.status_code == 200 and again.json == cancelled.json
    assert [e.status for e, _ in events.unrelayed()] == ["pending", "cancelled"]  # no second event


def test_cancel_takes_a_reason_refuses_a_rejected_booking_and_hides_anothers(api):
    booking_id = book(api)
    other = api.simulate_post(f"/booking/{booking_id}/cancel", headers=api.keys["other"])
    assert other.status_code == 404
    bad = api.simulate_post(f"/booking/{booking_id}/cancel", json={"reason": "a\u202eb"}, headers=api.keys["front"])
    assert (bad.status_code, bad.json["field"]) == (422, "reason")
    assert bad.headers["content-type"] == "application/problem+json"
    unknown = api.simulate_post(f"/booking/{booking_id}/cancel", json={"why": "x"}, headers=api.keys["front"])
    assert (unknown.status_code, unknown.json["field"]) == (422, "why")
    moved = api.simulate_post(
        f"/booking/{booking_id}/cancel", json={"reason": " moved away "}, headers=api.keys["front"]
    )
    assert moved.json["reason"] == "moved away"

    rejected = book(api, slot(11, 0))
    bookings.reject(rejected, "slot already taken")
    refused = api.simulate_post(f"/booking/{rejected}/cancel", headers=api.keys["front"])
    assert refused.status_code == 409 and refused.json["type"] == "urn:clinic:problem:invalid-transition"


def test_a_reschedule_is_accepted_as_a_new_pending_booking_and_a_second_one_is_409_naming_it(api):
    original = book(api, slot(9, 0), doctor_id=1)
    bookings.confirm(original, 1)
    body = {"slot": slot(15, 0), "doctor_id": 2}
    moved = api.simulate_post(f"/booking/{original}/reschedule", json=body, headers=api.keys["front"])
    assert moved.status_code == 202, moved.json
    new_id = moved.json["booking_id"]
    assert moved.headers["location"] == f"/booking/{new_id}"
    assert (moved.json["status"], moved.json["rescheduled_from"], moved.json["patient"]) == (
        "pending",
        original,
        "Ana Pérez",
    )
    assert api.sent[-1] == Step("process", (new_id,))

    second = api.simulate_post(f"/booking/{original}/reschedule", json={"slot": slot(16, 0)}, headers=api.keys["front"])
    assert second.status_code == 409
    assert (second.json["booking_id"], second.headers["location"]) == (new_id, f"/booking/{new_id}")

    bookings.confirm(new_id, 2)
    shown = api.simulate_get(f"/booking/{original}", headers=api.keys["front"]).json
    assert (shown["status"], shown["reason"], shown["rescheduled_to"]) == ("cancelled", "rescheduled", new_id)
    assert api.simulate_get(f"/booking/{new_id}", headers=api.keys["front"]).json["rescheduled_from"] == original
    final = api.simulate_post(f"/booking/{original}/reschedule", json={"slot": slot(16, 0)}, headers=api.keys["front"])
    assert final.status_code == 409 and final.json["type"] == "urn:clinic:problem:invalid-transition"


def test_a_reschedule_honours_the_idempotency_key_and_the_booking_rules(api):
    original = book(api, slot(9, 0))
    headers = {**api.keys["front"], "Idempotency-Key": "move-1"}
    first = api.simulate_post(f"/booking/{original}/reschedule", json={"slot": slot(12, 0)}, headers=headers)
    again = api.simulate_post(f"/booking/{original}/reschedule", json={"slot": slot(12, 0)}, headers=headers)
    assert (first.status_code, again.status_code) == (202, 202)
    assert again.json == first.json and again.headers["idempotent-replayed"] == "true"
    reused = api.simulate_post(f"/booking/{original}/reschedule", json={"slot": slot(13, 0)}, headers=headers)
    assert (reused.status_code, reused.json["header"]) == (422, "Idempotency-Key")
    for body, field in (
        ({"slot": slot(12, 1)}, "slot"),
        ({"slot": slot(12, 0), "patient": "Eve"}, "patient"),
        ({"slot": slot(12, 0), "doctor_id": 3}, "doctor_id"),
        ({}, "slot"),
    ):
        answer = api.simulate_post(f"/booking/{original}/reschedule", json=body, headers=api.keys["front"])
        assert (answer.status_code, answer.json["field"]) == (422, field), answer.json
    assert (
        api.simulate_post(
            f"/booking/{original}/reschedule", json={"slot": slot(12, 0)}, headers=api.keys["other"]
        ).status_code
        == 404
    )


@pytest.mark.parametrize(
    "params, name",
    [
        ({"from": "2030-02-30"}, "from"),
        ({"from": "2030-01-10", "to": "2030-01-09"}, "to"),
        ({"from": "2030-01-01", "to": "2030-02-01"}, "to"),
        ({"doctor_id": "3"}, "doctor_id"),
        ({"doctor_id": "x"}, "doctor_id"),
    ],
)
def test_a_bad_slots_parameter_is_422_naming_it(api, params, name):
    answer = api.simulate_get("/slots", params=params, headers=api.keys["front"])
    assert (answer.status_code, answer.json["field"]) == (422, name)


def test_slots_need_a_key(api):
    assert api.simulate_get("/slots").status_code == 401
    assert api.simulate_get("/slots", headers={"Authorization": "Bearer ck_nope"}).status_code == 401
    assert api.simulate_get("/slots", headers=api.keys["ops"]).status_code == 200  # admin may do what staff may


def test_a_client_lists_its_own_bookings_and_an_admin_every_booking(api):
    mine = [book(api, slot(8 + n, 0)) for n in range(3)]
    theirs = book(api, slot(14, 0), key="other")
    page = api.simulate_get("/bookings", params={"limit": "2"}, headers=api.keys["front"])
    assert page.status_code == 200 and [b["booking_id"] for b in page.json["bookings"]] == mine[:2]
    rest = api.simulate_get(
        "/bookings", params={"limit": "2", "cursor": page.json["next_cursor"]}, headers=api.keys["front"]
    )
    assert [b["booking_id"] for b in rest.json["bookings"]] == mine[2:] and rest.json["next_cursor"] is None
    everyone = api.simulate_get("/bookings", headers=api.keys["ops"])
    assert {b["booking_id"] for b in everyone.json["bookings"]} == {*mine, theirs}
    assert api.simulate_get(f"/booking/{theirs}", headers=api.keys["ops"]).status_code == 200  # admin >= staff
    assert api.simulate_get("/bookings").status_code == 401
    bookings.cancel(mine[1])
    cancelled = api.simulate_get("/bookings", params={"status": "cancelled"}, headers=api.keys["front"]).json
    assert [b["booking_id"] for b in cancelled["bookings"]] == [mine[1]]


@pytest.mark.parametrize(
    "params, name",
    [
        ({"cursor": "garbage"}, "cursor"),
        ({"limit": "0"}, "limit"),
        ({"status": "lost"}, "status"),
        ({"to": "2030-1-1"}, "to"),
        ({"offset": "3"}, "offset"),
    ],
)
def test_a_bad_listing_parameter_is_422_naming_it(api, params, name):
    answer = api.simulate_get("/bookings", params=params, headers=api.keys["front"])
    assert (answer.status_code, answer.json["field"]) == (422, name)


def test_the_document_describes_the_new_endpoints(api):
    paths = api.simulate_get("/openapi.json").json["paths"]
    assert {"/slots", "/bookings", "/booking/{booking_id}/cancel", "/booking/{booking_id}/reschedule"} <= set(paths)
    assert paths["/booking/{booking_id}/cancel"]["post"]["requestBody"]["required"] is False
    assert {"clientKey": []} in paths["/bookings"]["get"]["security"]
    assert {"adminKey": []} in paths["/bookings"]["get"]["security"]
    assert set(paths["/booking/{booking_id}/reschedule"]["post"]["responses"]) >= {"202", "404", "409", "422"}
