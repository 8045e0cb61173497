"""Free slots and pages of bookings read from a real database, SQLite file and PostgreSQL."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from clinic import booking_list, bookings, slots, store
from clinic.errors import InvalidField
from tests.support import slot


def day_of(text: str) -> str:
    return text.split(" ")[0]


def free(settings, when: str) -> set[tuple[str, int]]:
    found = slots.free_slots(settings, {"from": day_of(when), "to": day_of(when)})
    return {(f.start.strftime("%Y-%m-%d %H:%M"), f.doctor_id) for f in found}


def test_a_slot_is_held_by_a_pending_booking_with_a_doctor_or_a_confirmed_one_and_freed_by_cancel(db, settings):
    when = slot(10, 0)
    assert {(when, 1), (when, 2)} <= free(settings, when)
    asked = bookings.request_booking(settings, {"patient": "Ana", "slot": when, "doctor_id": 2})
    anyone = bookings.request_booking(settings, {"patient": "Luis", "slot": when})
    assert (when, 2) not in free(settings, when) and (when, 1) in free(settings, when)  # no doctor yet: holds none
    bookings.confirm(anyone.id, 1)
    assert not {(when, 1), (when, 2)} & free(settings, when)
    bookings.cancel(anyone.id)
    bookings.reject(asked.id, "slot already taken")
    assert {(when, 1), (when, 2)} <= free(settings, when)


def test_free_slots_of_one_doctor(db, settings):
    when = slot(11, 0)
    bookings.confirm(bookings.request_booking(settings, {"patient": "Ana", "slot": when}).id, 1)
    found = slots.free_slots(settings, {"from": day_of(when), "to": day_of(when), "doctor_id": "1"})
    assert {f.doctor_id for f in found} == {1}
    assert when not in {f.start.strftime("%Y-%m-%d %H:%M") for f in found}
    assert len(found) == 19


def make(settings, owner, count, start_hour=8):
    return [
        bookings.request_booking(
            settings, {"patient": "P", "slot": slot(start_hour + n // 2, 30 * (n % 2), weekday=n % 3)}, owner=owner
        )
        for n in range(count)
    ]


def test_pages_follow_slot_then_id_and_a_cursor_survives_new_bookings(db, settings):
    mine = make(settings, "k1", 12)
    make(settings, "k2", 3)
    seen, cursor = [], None
    while True:
        params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
        page = booking_list.list_bookings(settings, params, owner="k1")
        seen += page.bookings
        if len(seen) == 5:  # a booking added before the cursor does not shift the next page
            make(settings, "k1", 1, start_hour=8)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert {b.owner for b in seen} == {"k1"}
    assert [(b.slot, b.id) for b in seen] == sorted((b.slot, b.id) for b in seen)
    assert {b.id for b in mine} <= {b.id for b in seen}
    assert len({b.id for b in seen}) == len(seen)
    assert len(booking_list.list_bookings(settings, {"limit": "200"}, owner=None).bookings) == 16


def test_filters_combine(db, settings):
    booked = make(settings, "k1", 6)
    bookings.confirm(booked[0].id, 2)
    bookings.cancel(booked[1].id)
    confirmed = booking_list.list_bookings(settings, {"status": "confirmed", "doctor_id": "2"}, owner="k1")
    assert [b.id for b in confirmed.bookings] == [booked[0].id]
    day = booked[0].slot.date()
    on_day = booking_list.list_bookings(settings, {"from": day.isoformat(), "to": day.isoformat()}, owner="k1")
    assert {b.slot.date() for b in on_day.bookings} == {day} and len(on_day.bookings) == 2
    assert (
        booking_list.list_bookings(settings, {"status": "cancelled", "from": day.isoformat()}, owner="k2").bookings
        == []
    )


@pytest.mark.parametrize(
    "params, name",
    [
        ({"status": "lost"}, "status"),
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"doctor_id": "9"}, "doctor_id"),
        ({"from": "2030-13-01"}, "from"),
        ({"from": "2030-01-02", "to": "2030-01-01"}, "to"),
        ({"to": "9999-12-31"}, "to"),
        ({"cursor": "eyJub3BlIjoxfQ"}, "cursor"),
        ({"offset": "5"}, "offset"),
    ],
)
def test_a_bad_filter_is_named(db, settings, params, name):
    with pytest.raises(InvalidField) as error:
        booking_list.list_bookings(settings, params, owner=None)
    assert error.value.field == name


def test_the_largest_range_holds_in_one_read(db, settings):
    start = date.today() + timedelta(days=1)
    found = slots.free_slots(settings, {"from": start.isoformat(), "to": (start + timedelta(days=30)).isoformat()})
    assert len(found) == len({(f.start, f.doctor_id) for f in found}) > 0


def test_free_slots_cost_one_query_whatever_the_range(db, settings, monkeypatch):
    for hour in range(8, 18):
        bookings.request_booking(settings, {"patient": "P", "slot": slot(hour, 0), "doctor_id": 1})
    run = store.database.obj.execute_sql
    statements = []
    monkeypatch.setattr(
        store.database.obj, "execute_sql", lambda sql, *a, **k: statements.append(sql) or run(sql, *a, **k)
    )
    start = date.today() + timedelta(days=1)
    found = slots.free_slots(settings, {"from": start.isoformat(), "to": (start + timedelta(days=30)).isoformat()})
    assert len(found) > 100 and len(statements) == 1, statements
