"""One schema per body: the validation and /openapi.json come from the same types, and they agree
with the booking rules in ``clinic``."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import jsonschema_rs  # schemathesis's own validator, installed with it
import msgspec
import pytest
from falcon import testing
from hypothesis import given, settings
from hypothesis import strategies as st

from api import bodies
from api.app import create_app
from api.contract import field_and_problem, validate
from clinic import keys, store
from clinic.config import Settings
from clinic.errors import InvalidField
from clinic.schedule import parse_slot
from tests.support import slot


@pytest.fixture
def app_settings(sqlite_url) -> Settings:
    store.connect(sqlite_url)
    store.create_schema()
    yield Settings.from_env({"CLINIC_RATE_LIMIT": "0", "CLINIC_DOCTORS": "Dr. A;Dr. B"})
    if not store.database.is_closed():
        store.database.close()


def document(settings: Settings) -> dict:
    client = testing.TestClient(create_app(settings, dispatch=lambda _: None, checks={}))
    answer = client.simulate_get("/openapi.json")
    assert answer.status_code == 200
    return answer.json


@given(st.from_regex(bodies.SLOT_PATTERN))
@settings(max_examples=400, deadline=None)
def test_a_slot_that_matches_the_pattern_is_never_refused_for_its_shape(text):
    # On a one-minute grid in UTC, with the whole pattern's range ahead, only the shape could refuse it.
    instant = parse_slot(
        text, zone=ZoneInfo("UTC"), slot_minutes=1, now=datetime(1999, 1, 1, tzinfo=UTC), horizon_days=400_000
    )
    assert instant.tzinfo is not None


@pytest.mark.parametrize(
    "text",
    ["2026-12-14 10:30", "2026-12-14T10:30", "2026-12-14T10:30:00+01:00", "2026-12-14T10:30Z", "2028-02-29 09:00"],
)
def test_the_slot_pattern_takes_the_spellings_the_readme_shows(text):
    assert re.search(bodies.SLOT_PATTERN, text)


@pytest.mark.parametrize(
    "text",
    ["2027-02-29 09:00", "2026-04-31 09:00", "2026-12-14 24:00", "14/12/2026 10:30", "2026-12-14 10:30:00"],
)
def test_the_slot_pattern_refuses_what_the_server_would_not_read(text):
    assert not re.search(bodies.SLOT_PATTERN, text)


@pytest.mark.parametrize(
    "value, field, problem",
    [
        ({"slot": slot()}, "patient", "is required"),
        ({"patient": 7, "slot": slot()}, "patient", "must be a string"),
        ({"patient": "", "slot": slot()}, "patient", "must not be empty"),
        ({"patient": "x" * 201, "slot": slot()}, "patient", "must be at most 200 characters long"),
        ({"patient": "Ana", "slot": "tomorrow"}, "slot", "must be 'YYYY-MM-DD HH:MM'"),
        ({"patient": "Ana", "slot": slot(), "doctor_id": "1"}, "doctor_id", "must be an integer or null"),
        ({"patient": "Ana", "slot": slot(), "doctor_id": True}, "doctor_id", "must be an integer or null"),
        ({"patient": "Ana", "slot": slot(), "doctor_id": 3}, "doctor_id", "must be at most 2"),
        ({"patient": "Ana", "slot": slot(), "status": "confirmed"}, "status", "is not a field of this request"),
        ([], "body", "must be a JSON object"),
    ],
)
def test_a_body_that_breaks_the_schema_names_its_field(app_settings, value, field, problem):
    with pytest.raises(InvalidField) as error:
        validate(value, bodies.booking_request(app_settings))
    assert error.value.field == field
    assert error.value.problem.startswith(problem)


def test_msgspec_messages_are_read_back_without_quoting_what_was_sent():
    assert field_and_problem("Invalid enum value 'Ana Pérez' - at `$.queue`") == (
        "queue",
        "is not one of the values /openapi.json lists",
    )
    assert field_and_problem("Object missing required field `at` - at `$.history[0]`") == ("history.at", "is required")
    assert field_and_problem("Something new") == ("body", "is not valid")


def test_the_document_takes_its_body_schemas_from_the_validating_types(app_settings):
    doc = document(app_settings)
    schemas = doc["components"]["schemas"]
    _, components = msgspec.json.schema_components(
        [bodies.booking_request(app_settings)], ref_template="#/components/schemas/{name}"
    )
    request = dict(schemas["BookingRequest"])
    request["properties"] = {**request["properties"]}
    request["properties"]["slot"] = {k: v for k, v in request["properties"]["slot"].items() if k != "examples"}
    assert request == components["BookingRequest"]
    assert schemas["BookingRequest"]["properties"]["slot"]["pattern"] == bodies.SLOT_PATTERN
    assert schemas["BookingRequest"]["properties"]["doctor_id"]["anyOf"][0]["maximum"] == 2
    book = doc["paths"]["/book"]["post"]
    assert book["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/BookingRequest"
    }
    assert book["responses"]["422"]["content"] == {
        "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
    }


def test_the_security_in_the_document_follows_the_access_mode(app_settings):
    required, open_ = document(app_settings), document(replace(app_settings, open_access=True))
    for path, method in [("/book", "post"), ("/booking/{booking_id}", "get")]:
        assert required["paths"][path][method]["security"] == [{"clientKey": []}]
        assert open_["paths"][path][method]["security"] == [{"clientKey": []}, {}]
    for doc in (required, open_):
        assert doc["paths"]["/admin/dead-letters"]["get"]["security"] == [{"adminKey": []}]
        assert all("security" not in doc["paths"][path]["get"] for path in ("/health", "/doctors", "/openapi.json"))


def test_429_is_documented_only_when_there_is_a_rate_limit(app_settings):
    assert "429" not in document(app_settings)["paths"]["/book"]["post"]["responses"]
    limited = replace(app_settings, rate_limit=Settings().rate_limit)
    assert "429" in document(limited)["paths"]["/book"]["post"]["responses"]


def test_every_answer_the_api_gives_matches_its_schema_in_the_document(app_settings):
    """The response types build the bodies: a booking, its detail and a problem validate against
    the document the server publishes."""
    token = keys.create_key("app", "client").token
    client = testing.TestClient(create_app(app_settings, dispatch=lambda _: None, checks={}))
    doc = client.simulate_get("/openapi.json").json
    headers = {"Authorization": f"Bearer {token}"}
    created = client.simulate_post("/book", json={"patient": "Ana", "slot": slot()}, headers=headers)
    detail = client.simulate_get(created.headers["location"], headers=headers)
    refused = client.simulate_post("/book", json={"patient": 1, "slot": slot()}, headers=headers)
    for answer, name in [(created, "Booking"), (detail, "BookingDetail"), (refused, "Problem")]:
        schema = {"$ref": f"#/components/schemas/{name}", "components": doc["components"]}
        assert jsonschema_rs.validator_for(schema).is_valid(answer.json), (name, answer.json)
    assert refused.json["field"] == "patient" and refused.json["type"] == "urn:clinic:problem:invalid-field"
