"""The FHIR search-parameter rules of ``clinic.fhir``, without a database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from clinic import fhir
from clinic.config import Settings
from clinic.errors import InvalidField

SETTINGS = Settings.from_env({"CLINIC_DOCTORS": "Dr. A;Dr. B", "CLINIC_TIMEZONE": "Europe/Madrid"})
NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_day_stands_for_the_whole_clinic_day_and_prefixes_compare_against_it():
    day = fhir.date_range(SETTINGS, "date", "2026-12-14")
    assert day == fhir.Range(at("2026-12-13T23:00+00:00"), at("2026-12-14T23:00+00:00"))
    assert fhir.date_range(SETTINGS, "date", "gt2026-12-14") == fhir.Range(day.until, None)
    assert fhir.date_range(SETTINGS, "date", "lt2026-12-14") == fhir.Range(None, day.since)
    both = fhir.date_range(SETTINGS, "date", ["ge2026-12-14T10:00Z", "le2026-12-14T10:30:15Z"])
    assert both == fhir.Range(at("2026-12-14T10:00+00:00"), at("2026-12-14T10:30:16+00:00"))


@pytest.mark.parametrize("text", ["ne2026-12-14", "2026-02-30", "14/12/2026", "ge2026-12-14T25:00Z", "x" * 100])
def test_an_unreadable_date_names_its_parameter(text):
    with pytest.raises(InvalidField) as raised:
        fhir.date_range(SETTINGS, "date", text)
    assert raised.value.field == "date"


def test_appointment_search_maps_fhir_statuses_and_references_back():
    search = fhir.appointment_search(SETTINGS, {"status": "cancelled,booked", "practitioner": "Practitioner/2"})
    assert set(search.statuses) == {"rejected", "cancelled", "confirmed"} and search.doctor_id == 2
    assert fhir.appointment_search(SETTINGS, {"status": "noshow"}).statuses == ()
    assert fhir.appointment_search(SETTINGS, {}).count == fhir.DEFAULT_COUNT


def test_slot_search_defaults_to_the_coming_week_and_refuses_more_than_31_days():
    assert fhir.slot_search(SETTINGS, {}, now=NOW).params == {"from": "2026-12-01", "to": "2026-12-07"}
    found = fhir.slot_search(SETTINGS, {"start": "2026-12-14", "schedule": "Schedule/1"}, now=NOW)
    assert found.params == {"from": "2026-12-14", "to": "2026-12-14", "doctor_id": "1"} and found.free
    assert not fhir.slot_search(SETTINGS, {"status": "busy"}, now=NOW).free
    with pytest.raises(InvalidField) as raised:
        fhir.slot_search(SETTINGS, {"start": ["ge2026-12-01", "lt2027-01-02"]}, now=NOW)
    assert raised.value.field == "start"


def test_an_operation_outcome_names_the_parameter_at_fault():
    assert fhir.operation_outcome(400, "date is bad", expression="date")["issue"] == [
        {"severity": "error", "code": "invalid", "diagnostics": "date is bad", "expression": ["date"]}
    ]
