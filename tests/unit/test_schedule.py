from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from clinic.errors import InvalidField
from clinic.schedule import OpeningHours, parse_slot

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)  # a Sunday
UTC = ZoneInfo("UTC")
MADRID = ZoneInfo("Europe/Madrid")


def read(text, zone=UTC, minutes=30, horizon=365):
    return parse_slot(text, zone=zone, slot_minutes=minutes, now=NOW, horizon_days=horizon)


def test_a_local_slot_is_clinic_time():
    assert read("2026-12-14 10:30", MADRID) == datetime(2026, 12, 14, 9, 30, tzinfo=timezone.utc)


def test_an_offset_slot_is_taken_as_written():
    assert read("2026-12-14T10:30:00+02:00", MADRID) == datetime(2026, 12, 14, 8, 30, tzinfo=timezone.utc)


@pytest.mark.parametrize(
    "text, problem",
    [
        ("2026-12-14 10:31", "grid"),
        ("2026-12-14T10:30:15+00:00", "grid"),
        ("2026-11-28 10:30", "past"),
        ("2028-12-14 10:30", "days ahead"),
        ("14/12/2026 10:30", "YYYY-MM-DD"),
        ("2026-12-14", "YYYY-MM-DD HH:MM"),
        ("2026-12-14 10:30:00", "YYYY-MM-DD HH:MM"),
        ("2026-13-14 10:30", "YYYY-MM-DD"),
        ("", "YYYY-MM-DD"),
        ("x" * 500, "too long"),
    ],
)
def test_a_bad_slot_names_the_slot_field(text, problem):
    with pytest.raises(InvalidField) as error:
        read(text)
    assert error.value.field == "slot"
    assert problem in error.value.problem


@pytest.mark.parametrize("value", [None, 20261214, ["2026-12-14 10:30"], {"at": "10:30"}, True])
def test_a_slot_that_is_not_a_string_is_refused(value):
    with pytest.raises(InvalidField, match="slot"):
        read(value)


def test_a_local_time_skipped_by_the_clock_change_does_not_exist():
    with pytest.raises(InvalidField, match="does not exist"):
        parse_slot("2027-03-28 02:30", zone=MADRID, slot_minutes=30, now=NOW, horizon_days=365)


def test_opening_hours_cover_whole_slots_only():
    hours = OpeningHours.parse("Mon-Fri 08:00-18:00; Sat 09:00-13:00")
    monday = datetime(2026, 11, 30)
    assert hours.covers(monday.replace(hour=8), 30)
    assert hours.covers(monday.replace(hour=17, minute=30), 30)
    assert not hours.covers(monday.replace(hour=17, minute=45), 30)
    assert not hours.covers(monday.replace(hour=7, minute=30), 30)
    assert hours.covers(datetime(2026, 12, 5, 12, 30), 30)  # Saturday
    assert not hours.covers(datetime(2026, 12, 6, 10, 0), 30)  # Sunday


def test_opening_hours_can_wrap_the_week_and_run_to_midnight():
    hours = OpeningHours.parse("Sat-Mon 00:00-24:00")
    assert hours.covers(datetime(2026, 12, 6, 23, 30), 30)  # Sunday
    assert hours.covers(datetime(2026, 11, 30, 0, 0), 30)  # Monday
    assert not hours.covers(datetime(2026, 12, 1, 12, 0), 30)  # Tuesday
