"""The live event stream end to end: a real ``clinic up`` on the real broker, read over HTTP."""

from __future__ import annotations

import time

from tests.support import wait_until
from tests.support.keys import bearer, create_key
from tests.support.sse import EventReader


def test_a_stream_sees_pending_then_confirmed_and_a_reconnect_misses_nothing(start_clinic):
    clinic = start_clinic(CLINIC_STREAM_MAX="6")  # a closed stream's slot is freed at its next write
    other = create_key(clinic.env, "client", "other-desk")
    admin = create_key(clinic.env, "admin", "ops")
    staff = create_key(clinic.env, "staff", "front desk")
    mine = EventReader(clinic.port, headers=bearer(clinic.token))
    desk = EventReader(clinic.port, headers=bearer(staff))  # the front desk follows every booking
    everyone = EventReader(clinic.port, headers=bearer(admin))
    theirs = EventReader(clinic.port, headers=bearer(other))
    try:
        assert mine.status == 200 and mine.headers["content-type"].startswith("text/event-stream")
        wait_until(
            lambda: mine.comments and everyone.comments and theirs.comments and desk.comments,
            timeout=10,
            what="open streams",
        )
        sent_at = time.monotonic()
        booking_id = clinic.book().json()["booking_id"]
        assert clinic.wait_final(booking_id)["status"] == "confirmed"
        wait_until(lambda: len(mine.of(booking_id)) == 2, timeout=30, what="pending and confirmed")
        wait_until(lambda: len(everyone.of(booking_id)) == 2, timeout=30, what="the admin's stream")
        wait_until(lambda: len(desk.of(booking_id)) == 2, timeout=30, what="the staff key's stream")
        (first_id, first), (second_id, second) = mine.of(booking_id)
        assert (first, second) == ("booking.pending", "booking.confirmed") and first_id < second_id
        print(f"pending reached the stream {mine.frames[0][3] - sent_at:.3f}s after POST /book was sent")
        assert theirs.of(booking_id) == []  # another client's stream hears nothing of it
        cancel = clinic.http("POST", f"/booking/{booking_id}/cancel")
        assert cancel.status == 200

        again = EventReader(clinic.port, headers={**bearer(clinic.token), "Last-Event-ID": str(first_id)})
        try:
            wait_until(lambda: len(again.of(booking_id)) == 2, timeout=30, what="the replay from Last-Event-ID")
            time.sleep(1)
            assert [kind for _, kind in again.of(booking_id)] == ["booking.confirmed", "booking.cancelled"]
            ids = [frame[0] for frame in again.frames]
            assert ids == sorted(set(ids)) and min(ids) > first_id  # no duplicate, nothing before it
        finally:
            again.close()
        one = EventReader(clinic.port, f"/events?booking_id={booking_id}&last_event_id=0", headers=bearer(admin))
        try:
            assert one.status == 200
            wait_until(lambda: len(one.frames) == 3, timeout=30, what="one booking's whole story")
            assert [kind for _, kind in one.of(booking_id)] == [
                "booking.pending",
                "booking.confirmed",
                "booking.cancelled",
            ]
        finally:
            one.close()
    finally:
        for reader in (mine, everyone, theirs, desk):
            reader.close()


def test_streams_are_capped_per_process_end_by_themselves_and_never_starve_booking(start_clinic):
    clinic = start_clinic(CLINIC_STREAM_MAX="1", CLINIC_STREAM_MAX_SECONDS="3")
    first = EventReader(clinic.port, headers=bearer(clinic.token))
    try:
        assert first.status == 200
        refused = EventReader(clinic.port, headers=bearer(clinic.token))
        assert refused.status == 503 and int(refused.headers["retry-after"]) > 0
        assert clinic.book().status == 202  # the stream holds one thread, not the API
        assert first.ended.wait(30), "the stream did not end after CLINIC_STREAM_MAX_SECONDS"
        later = wait_until(
            lambda: (r := EventReader(clinic.port, headers=bearer(clinic.token))).status == 200 and r,
            timeout=30,
            what="the freed slot",
        )
        later.close()
    finally:
        first.close()
