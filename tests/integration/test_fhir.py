"""The FHIR R4 view through Falcon's TestClient on a real database: every resource, Bundle and
OperationOutcome it answers is validated by the fhir.resources R4B models."""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from falcon import testing
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.schedule import Schedule
from fhir.resources.R4B.slot import Slot

from api.app import create_app
from clinic import bookings, keys, store
from tests.support import slot

MODELS = {
    model.__name__: model
    for model in (Appointment, Bundle, CapabilityStatement, OperationOutcome, Practitioner, Schedule, Slot)
}


@pytest.fixture
def database(database_url):
    store.connect(database_url)
    store.create_schema()
    yield
    if not store.database.is_closed():
        store.database.close()


@pytest.fixture
def client(database, settings):
    return testing.TestClient(create_app(settings, dispatch=lambda step: None, checks={}))


@pytest.fixture
def key(database) -> keys.NewKey:
    return keys.create_key("portal", "client")


def auth(created) -> dict[str, str]:
    return {"Authorization": f"Bearer {created.token}"}


def valid(answer, status: int = 200) -> dict:
    """The answer's FHIR resource, after checking its status, media type and R4B validity."""
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == "application/fhir+json"
    return valid_resource(answer.json)


def valid_resource(resource: dict) -> dict:
    MODELS[resource["resourceType"]].model_validate(resource)
    if resource["resourceType"] == "Appointment":  # invariants the models do not check: app-3, app-4
        assert ("start" in resource) == ("end" in resource)
        assert "cancelationReason" not in resource or resource["status"] in ("cancelled", "noshow")
    if resource["resourceType"] == "Bundle":
        for entry in resource.get("entry", []):
            valid_resource(entry["resource"])
    return resource


def outcome(answer, status: int) -> dict:
    resource = valid(answer, status)
    assert resource["resourceType"] == "OperationOutcome"
    return resource["issue"][0]


def test_metadata_is_a_public_capability_statement(client):
    statement = valid(client.simulate_get("/fhir/r4/metadata"))
    assert statement["fhirVersion"] == "4.0.1"
    assert {r["type"] for r in statement["rest"][0]["resource"]} == {"Appointment", "Practitioner", "Schedule", "Slot"}


def test_each_booking_status_maps_to_a_valid_appointment(client, settings, key):
    made = {
        name: bookings.request_booking(settings, {"patient": "Ana Pérez", "slot": slot(9 + n)}, owner=key.key.id)
        for n, name in enumerate(["pending", "confirmed", "rejected", "cancelled"])
    }
    bookings.confirm(made["confirmed"].id, 2)
    bookings.reject(made["rejected"].id, "no doctor is free")
    bookings.confirm(made["cancelled"].id, 1)
    bookings.cancel(made["cancelled"].id)
    seen = {
        name: valid(client.simulate_get(f"/fhir/r4/Appointment/{b.id}", headers=auth(key))) for name, b in made.items()
    }

    assert {name: a["status"] for name, a in seen.items()} == {
        "pending": "pending",
        "confirmed": "booked",
        "rejected": "cancelled",
        "cancelled": "cancelled",
    }
    booked = seen["confirmed"]
    assert booked["identifier"] == [{"system": "urn:clinic:booking", "value": made["confirmed"].id}]
    assert (
        booked["start"] == slot(10).replace(" ", "T") + ":00Z"
        and booked["end"] == slot(10, 30).replace(" ", "T") + ":00Z"
    )
    assert booked["participant"][0]["actor"] == {"display": "Ana Pérez"}
    assert booked["participant"][1]["actor"] == {"reference": "Practitioner/2"}
    assert "cancelationReason" not in booked and "cancelationReason" not in seen["pending"]
    assert [p["status"] for p in seen["pending"]["participant"]] == ["accepted"]  # no doctor yet
    assert seen["rejected"]["cancelationReason"] == {"text": "no doctor is free"}
    assert seen["cancelled"]["cancelationReason"] == {"text": "cancelled by the patient"}


def test_another_clients_or_an_unknown_appointment_is_a_404_outcome(client, settings, key):
    other = keys.create_key("other", "client")
    theirs = bookings.request_booking(settings, {"patient": "Luis", "slot": slot(10)}, owner=other.key.id)
    unknown = (f"/fhir/r4/Appointment/{theirs.id}", f"/fhir/r4/Appointment/{uuid.uuid4()}", "/fhir/r4/Patient/1")
    # A digit that is not ASCII ("³", "٣") is no doctor's id; schemathesis found "³" answered 500.
    unknown += ("/fhir/r4/Practitioner/%C2%B3", "/fhir/r4/Schedule/%D9%A3", "/fhir/r4/Practitioner/0")
    for path in unknown:
        assert outcome(client.simulate_get(path, headers=auth(key)), 404)["code"] == "not-found"
    assert valid(client.simulate_get(f"/fhir/r4/Appointment/{theirs.id}", headers=auth(other)))["id"] == theirs.id


def test_without_a_valid_key_the_answer_is_a_401_outcome(client, settings):
    for headers in ({}, {"Authorization": "Bearer ck_nope_nope"}):
        issue = outcome(client.simulate_get("/fhir/r4/Appointment", headers=headers), 401)
        assert issue["code"] == "login"
    assert outcome(client.simulate_get("/fhir/r4/Practitioner/1"), 401)["code"] == "login"


def test_practitioner_and_schedule_per_doctor(client, key):
    practitioner = valid(client.simulate_get("/fhir/r4/Practitioner/2", headers=auth(key)))
    assert practitioner["name"] == [{"text": "Dr. Luis Gómez"}]
    schedule = valid(client.simulate_get("/fhir/r4/Schedule/2", headers=auth(key)))
    assert schedule["actor"][0]["reference"] == "Practitioner/2"
    assert schedule["planningHorizon"]["start"] < schedule["planningHorizon"]["end"]
    for path in ("/fhir/r4/Practitioner/3", "/fhir/r4/Schedule/0", "/fhir/r4/Schedule/x"):
        assert outcome(client.simulate_get(path, headers=auth(key)), 404)["code"] == "not-found"


def test_appointment_search_filters_and_pages_with_a_next_link(client, settings, key):
    day = slot(8).split(" ")[0]
    made = [
        bookings.request_booking(settings, {"patient": f"P{n}", "slot": slot(8 + n)}, owner=key.key.id)
        for n in range(5)
    ]
    bookings.request_booking(settings, {"patient": "Other", "slot": slot(8)}, owner="someone-else")
    bookings.confirm(made[1].id, 1)
    bookings.confirm(made[2].id, 2)

    def search(**params) -> dict:
        answer = client.simulate_get("/fhir/r4/Appointment", params=params, headers=auth(key))
        return valid(answer)

    def ids(found: dict) -> list[str]:
        return [entry["resource"]["id"] for entry in found.get("entry", [])]

    assert ids(search()) == [b.id for b in made]
    assert ids(search(status="booked")) == [made[1].id, made[2].id]
    assert ids(search(status="booked", practitioner="Practitioner/2")) == [made[2].id]
    assert ids(search(date=day)) == [b.id for b in made]
    assert ids(search(date=f"gt{day}")) == []
    assert ids(search(date=[f"ge{day}T10:00:00Z", f"lt{day}T12:00Z"])) == [made[2].id, made[3].id]
    assert ids(search(date=f"eq{day}T09:00Z")) == [made[1].id]

    first = search(_count="2")
    assert ids(first) == [made[0].id, made[1].id] and "total" not in first
    nxt = {link["relation"]: link["url"] for link in first["link"]}["next"]
    query = parse_qs(urlsplit(nxt).query)
    second = search(**{name: values[0] for name, values in query.items()})
    assert ids(second) == [made[2].id, made[3].id]


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"date": "2026-13-01"}, "date"),
        ({"date": "ne2026-12-01"}, "date"),
        ({"date": "tomorrow"}, "date"),
        ({"status": "confirmed"}, "status"),
        ({"practitioner": "Patient/1"}, "practitioner"),
        ({"practitioner": "9"}, "practitioner"),
        ({"_count": "0"}, "_count"),
        ({"_count": "201"}, "_count"),
        ({"_cursor": "tampered"}, "cursor"),
        ({"patient": "Ana"}, "patient"),
        ({"status": ["booked", "pending"]}, "status"),
    ],
)
def test_a_bad_appointment_search_parameter_is_a_400_outcome_naming_it(client, key, params, name):
    issue = outcome(client.simulate_get("/fhir/r4/Appointment", params=params, headers=auth(key)), 400)
    assert issue["code"] == "invalid" and issue["expression"] == [name]
    assert name in issue["diagnostics"]


def test_slot_search_lists_the_free_slots_of_a_schedule(client, settings, key):
    when = slot(10)
    day = when.split(" ")[0]
    booked = bookings.request_booking(settings, {"patient": "Ana", "slot": when}, owner=key.key.id)
    bookings.confirm(booked.id, 1)

    def search(**params) -> list[dict]:
        found = valid(client.simulate_get("/fhir/r4/Slot", params=params, headers=auth(key)))
        assert found["total"] == len(found.get("entry", []))
        return [entry["resource"] for entry in found.get("entry", [])]

    mine = search(schedule="Schedule/1", start=day, status="free")
    assert len(mine) == 19 and {s["schedule"]["reference"] for s in mine} == {"Schedule/1"}
    assert f"1-{day.replace('-', '')}1000" not in {s["id"] for s in mine}
    assert f"2-{day.replace('-', '')}1000" in {s["id"] for s in search(schedule="2", start=day)}
    hour = search(start=[f"ge{day}T10:00Z", f"lt{day}T11:00Z"])
    assert [(s["id"], s["start"]) for s in hour] == [
        (f"2-{day.replace('-', '')}1000", f"{day}T10:00:00Z"),
        (f"1-{day.replace('-', '')}1030", f"{day}T10:30:00Z"),
        (f"2-{day.replace('-', '')}1030", f"{day}T10:30:00Z"),
    ]
    assert search(status="busy", start=day) == []  # only free slots are listed
    assert search()  # the coming week by default


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"start": "ge2026-01-01", "schedule": "Schedule/7"}, "schedule"),
        ({"start": ["ge2030-01-01", "le2030-03-01"]}, "start"),
        ({"status": "open"}, "status"),
        ({"start": "2026-02-30"}, "start"),
    ],
)
def test_a_bad_slot_search_parameter_is_a_400_outcome_naming_it(client, key, params, name):
    issue = outcome(client.simulate_get("/fhir/r4/Slot", params=params, headers=auth(key)), 400)
    assert issue["expression"] == [name]
