"""One schema per body: /openapi.json comes from the types that validate, its security follows the
access mode, and the answers the API gives match the schemas it publishes."""

from __future__ import annotations

from dataclasses import replace

import jsonschema_rs  # schemathesis's own validator, installed with it
import msgspec
import pytest
from falcon import testing

from api import bodies
from api.app import create_app
from clinic import keys, store
from clinic.config import Settings
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
