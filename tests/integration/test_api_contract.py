"""One schema per body: the slot pattern agrees with the slot rules in ``clinic``, and a body that
breaks the schema is refused naming its field (no database, no server)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api import bodies
from api.contract import field_and_problem, validate
from clinic.config import Settings
from clinic.errors import InvalidField
from clinic.schedule import parse_slot
from tests.support import slot


@pytest.fixture
def app_settings() -> Settings:
    return Settings.from_env({"CLINIC_RATE_LIMIT": "0", "CLINIC_DOCTORS": "Dr. A;Dr. B"})


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
