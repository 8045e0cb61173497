"""The free-slot grid and the listing cursor: pure rules, no database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from clinic import booking_list, slots
from clinic.config import Settings
from clinic.errors import InvalidField

MONDAY = date(2030, 1, 7)
BEFORE = datetime(2030, 1, 1, tzinfo=UTC)


def clinic(**env) -> Settings:
    return Settings.from_env({"CLINIC_DOCTORS": "Dr. A;Dr. B", "CLINIC_HOURS": "Mon 09:00-11:00", **env})


def test_the_grid_is_the_working_hours_on_the_slot_grid():
    starts = slots.grid(clinic(), MONDAY, MONDAY + timedelta(days=6), now=BEFORE)
    assert [s.strftime("%a %H:%M") for s in starts] == ["Mon 09:00", "Mon 09:30", "Mon 10:00", "Mon 10:30"]


def test_the_grid_leaves_out_the_past_and_what_is_beyond_the_horizon():
    now = datetime(2030, 1, 7, 9, 30, tzinfo=UTC)
    assert [s.strftime("%H:%M") for s in slots.grid(clinic(), MONDAY, MONDAY, now=now)] == ["10:00", "10:30"]
    assert (
        slots.grid(clinic(CLINIC_HORIZON_DAYS="1"), MONDAY + timedelta(days=7), MONDAY + timedelta(days=7), now=now)
        == []
    )


def test_a_period_off_the_grid_starts_at_the_next_grid_point():
    starts = slots.grid(clinic(CLINIC_HOURS="Mon 09:10-10:30"), MONDAY, MONDAY, now=BEFORE)
    assert [s.strftime("%H:%M") for s in starts] == ["09:30", "10:00"]


def test_a_clock_change_skips_or_repeats_local_slots():
    madrid = clinic(CLINIC_TIMEZONE="Europe/Madrid", CLINIC_HOURS="Sun 01:00-04:00")
    spring, autumn = date(2030, 3, 31), date(2030, 10, 27)  # 02:00-03:00 skipped; 02:00-03:00 twice
    skipped = slots.grid(madrid, spring, spring, now=BEFORE)
    assert [s.astimezone(madrid.timezone).strftime("%H:%M") for s in skipped] == ["01:00", "01:30", "03:00", "03:30"]
    repeated = slots.grid(madrid, autumn, autumn, now=BEFORE)
    assert len(repeated) == 8 and repeated == sorted(set(repeated))


def test_free_slots_drop_each_doctors_held_slot_and_order_by_start_then_doctor():
    settings = clinic()
    nine = datetime(2030, 1, 7, 9, 0)  # holds are naive UTC, as the database keeps slots
    found = slots.free_slots(
        settings,
        {"from": "2030-01-07", "to": "2030-01-07"},
        now=lambda: BEFORE,
        holds=lambda start, end, doctor: {(1, nine), (2, nine + timedelta(minutes=30))},
    )
    assert [(f.start.strftime("%H:%M"), f.doctor_id) for f in found] == [
        ("09:00", 2),
        ("09:30", 1),
        ("10:00", 1),
        ("10:00", 2),
        ("10:30", 1),
        ("10:30", 2),
    ]
    assert found[0].as_dict() == {
        "start": "2030-01-07T09:00:00+00:00",
        "end": "2030-01-07T09:30:00+00:00",
        "doctor_id": 2,
    }


def test_the_range_defaults_to_a_week_from_today_in_the_clinics_zone():
    asked = []
    slots.free_slots(clinic(), {}, now=lambda: BEFORE, holds=lambda *a: asked.append(a) or ())
    [(start, end, doctor)] = asked
    assert (start, end, doctor) == (datetime(2030, 1, 7, 9, tzinfo=UTC), datetime(2030, 1, 7, 10, 30, tzinfo=UTC), None)


@pytest.mark.parametrize(
    "params, name",
    [
        ({"from": "2030-1-7"}, "from"),
        ({"from": "2030-02-30"}, "from"),
        ({"to": "tomorrow"}, "to"),
        ({"from": "2030-01-07", "to": "2030-01-06"}, "to"),
        ({"from": "2030-01-01", "to": "2030-02-01"}, "to"),  # 32 days
        ({"doctor_id": "3"}, "doctor_id"),
        ({"doctor_id": "one"}, "doctor_id"),
        ({"doctor_id": "-1"}, "doctor_id"),
        ({"page": "2"}, "page"),
    ],
)
def test_a_bad_parameter_is_named(params, name):
    with pytest.raises(InvalidField) as error:
        slots.free_slots(clinic(), params, now=lambda: BEFORE, holds=lambda *a: ())
    assert error.value.field == name


def test_thirty_one_days_are_allowed():
    found = slots.free_slots(
        clinic(), {"from": "2030-01-01", "to": "2030-01-31"}, now=lambda: BEFORE, holds=lambda *a: ()
    )
    assert len(found) == 4 * 4 * 2  # four Mondays, four slots, two doctors


class Row:
    def __init__(self, slot, id):
        self.slot, self.id = slot, id


def test_a_cursor_reads_back_as_the_pair_it_was_made_of():
    row = Row(datetime(2030, 1, 7, 9, tzinfo=UTC), "0c4c7f0e-2f57-4a7e-9a51-8d1f0f3c2b8e")
    assert booking_list.decode_cursor(booking_list.encode_cursor(row)) == (row.slot, row.id)


@pytest.mark.parametrize(
    "cursor",
    ["", "!!!", "bm9wZQ", "W10", "WyJ4IiwieSJd", "WyIyMDMwLTAxLTA3VDA5OjAwOjAwIiwiMCJd", "W1tbW1tbXV1dXV1d", "A" * 500],
)
def test_a_tampered_cursor_is_refused_naming_it(cursor):
    with pytest.raises(InvalidField) as error:
        booking_list.decode_cursor(cursor)
    assert error.value.field == "cursor"
