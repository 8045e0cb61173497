"""The front desk's ``staff`` scope and the ``by`` of each history row, over HTTP (Falcon's
TestClient, a SQLite file and a PostgreSQL database): a staff key books, lists, cancels and
reschedules any booking; an admin key may too; neither a staff key nor a client key reaches /admin;
every change names the key that made it."""

from __future__ import annotations

import pytest
from falcon import testing

from api.app import create_app
from clinic import bookings, keys, store
from clinic.config import STAGES, Settings
from clinic.lifecycle import Step
from tests.support import slot


@pytest.fixture
def api(database_url, namespace):
    store.connect(database_url)
    store.create_schema()
    settings = Settings.from_env(
        {"CLINIC_RATE_LIMIT": "0", "CLINIC_DOCTORS": "Dr. A;Dr. B", "CLINIC_NAMESPACE": namespace}
    )
    sent: list[Step] = []
    client = testing.TestClient(create_app(settings, dispatch=sent.append, checks={}))
    client.sent = sent
    client.keys = {
        name: {"Authorization": f"Bearer {keys.create_key(name, scope).token}"}
        for name, scope in (("patient app", "client"), ("other app", "client"), ("desk 1", "staff"), ("ops", "admin"))
    }
    yield client
    if not store.database.is_closed():
        store.database.close()


def book(api, key: str, when: str, **fields) -> str:
    answer = api.simulate_post("/book", json={"patient": "Ana Pérez", "slot": when, **fields}, headers=api.keys[key])
    assert answer.status_code == 202, answer.json
    return answer.json["booking_id"]


def test_a_staff_key_sees_cancels_and_reschedules_a_clients_booking_and_history_names_each_key(api):
    booking_id = book(api, "patient app", slot(10, 0), doctor_id=1)
    assert api.simulate_get(f"/booking/{booking_id}", headers=api.keys["desk 1"]).status_code == 200
    listed = api.simulate_get("/bookings", headers=api.keys["desk 1"]).json["bookings"]
    assert [b["booking_id"] for b in listed] == [booking_id]

    moved = api.simulate_post(
        f"/booking/{booking_id}/reschedule", json={"slot": slot(11, 0), "doctor_id": 2}, headers=api.keys["desk 1"]
    )
    assert moved.status_code == 202, moved.json
    new_id = moved.json["booking_id"]
    assert bookings.confirm(new_id, 2) is bookings.Outcome.CHANGED  # the pipeline's part, by no key
    cancelled = api.simulate_post(f"/booking/{new_id}/cancel", json={"reason": "called"}, headers=api.keys["ops"])
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"

    history = [(e["status"], e["by"]) for e in cancelled.json["history"]]
    assert history == [("pending", "desk 1"), ("confirmed", None), ("cancelled", "ops")]
    original = api.simulate_get(f"/booking/{booking_id}", headers=api.keys["patient app"]).json
    assert [(e["status"], e["by"]) for e in original["history"]] == [("pending", "patient app"), ("cancelled", None)]
    # The patient still owns what the desk moved for them: the new booking keeps the original's owner.
    assert api.simulate_get(f"/booking/{new_id}", headers=api.keys["patient app"]).status_code == 200


def test_a_staff_booking_is_everyones_to_the_desk_and_no_clients(api):
    booking_id = book(api, "desk 1", slot(9, 0), doctor_id=1)
    assert api.simulate_get(f"/booking/{booking_id}", headers=api.keys["patient app"]).status_code == 404
    assert api.simulate_post(f"/booking/{booking_id}/cancel", headers=api.keys["other app"]).status_code == 404
    assert api.simulate_get("/bookings", headers=api.keys["patient app"]).json["bookings"] == []
    for key in ("desk 1", "ops"):
        listed = api.simulate_get("/bookings", headers=api.keys[key]).json["bookings"]
        assert [b["booking_id"] for b in listed] == [booking_id]


@pytest.mark.parametrize("path", ["/admin/dead-letters", "/admin/nowhere"])
def test_a_staff_key_cannot_reach_the_admin_paths(api, path):
    answer = api.simulate_get(path, headers=api.keys["desk 1"])
    assert answer.status_code == 401
    assert answer.json["detail"] == "an admin API key is required"


def test_two_desk_keys_idempotency_keys_do_not_collide(api):
    first = book(api, "desk 1", slot(14, 0), doctor_id=1)
    request = {"slot": slot(15, 0), "doctor_id": 1}
    one = api.simulate_post(
        f"/booking/{first}/reschedule", json=request, headers={**api.keys["desk 1"], "Idempotency-Key": "k1"}
    )
    assert one.status_code == 202, one.json
    # The same Idempotency-Key from another key is another request: it meets the reschedule in flight.
    other = api.simulate_post(
        f"/booking/{first}/reschedule", json=request, headers={**api.keys["ops"], "Idempotency-Key": "k1"}
    )
    assert other.status_code == 409 and "Idempotent-Replayed" not in other.headers


def test_the_document_offers_each_scope_that_may_call_an_operation(api):
    document = api.simulate_get("/openapi.json").json
    assert document["paths"]["/book"]["post"]["security"] == [{"clientKey": []}, {"staffKey": []}, {"adminKey": []}]
    assert document["paths"]["/admin/dead-letters"]["get"]["security"] == [{"adminKey": []}]
    event = document["components"]["schemas"]["Event"]
    assert "by" in event["required"]


def test_the_desk_reads_who_it_is_and_every_slot_of_a_day(api):
    me = api.simulate_get("/me", headers=api.keys["desk 1"]).json
    assert (me["name"], me["scope"]) == ("desk 1", "staff")
    when = slot(10, 0)
    day = api.simulate_get("/calendar", params={"date": when[:10]}, headers=api.keys["patient app"]).json
    assert day["date"] == when[:10] and len(day["slots"]) == 20  # Mon-Fri 08:00-18:00, 30 minutes
    assert day["slots"][0]["start"] == f"{when[:10]}T08:00:00+00:00"
    bad = api.simulate_get("/calendar", params={"date": "2026-02-30"}, headers=api.keys["patient app"])
    assert (bad.status_code, bad.json["field"]) == (422, "date")
    page = api.simulate_get("/desk")
    assert page.status_code == 200 and 'name="api-key"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert api.simulate_get("/desk/static/desk.js").status_code == 200


def test_an_admin_reads_the_pipelines_state_and_a_staff_key_may_not(api):
    booking_id = book(api, "desk 1", slot(16, 0))
    state = api.simulate_get("/admin/pipeline", headers=api.keys["ops"])
    assert state.status_code == 200, state.json
    assert [q["stage"] for q in state.json["queues"]] == list(STAGES)
    assert all(q["ready"] == q["delayed"] == q["dead"] == 0 for q in state.json["queues"])  # the test sends nothing
    assert state.json["oldest_pending"]["booking_id"] == booking_id
    assert api.simulate_get("/admin/pipeline", headers=api.keys["desk 1"]).status_code == 401
