"""A live stream hears a commit at once, on a real SQLite file and a real PostgreSQL: the commit
bell wakes it long before its next look at the database would."""

from __future__ import annotations

import threading
import time

from api import stream
from clinic import bookings, events, store
from tests.support import slot


def test_a_stream_reads_as_soon_as_a_commit_rings_not_at_its_next_poll(db, settings, monkeypatch):
    monkeypatch.setattr(stream, "POLL", 30.0)  # without the bell, the frame would wait this long
    bell = stream.CommitBell(lambda: store.commit_watcher(store.database.obj))
    with store.database.connection_context():
        cursor = events.latest_id()
    frames = stream.frames(settings, cursor, owner=None, booking_id=None, bell=bell)
    try:
        assert next(frames).startswith(b":")
        booked: list[str] = []

        def book() -> None:
            time.sleep(0.5)  # the stream is waiting by now
            with store.database.connection_context():
                booked.append(bookings.request_booking(settings, {"patient": "Ana Pérez", "slot": slot(10)}).id)

        threading.Thread(target=book).start()
        started = time.monotonic()
        first = next(frames)  # the pending event of that booking
        waited = time.monotonic() - started
        assert booked and booked[0].encode() in first and b"event: booking.pending" in first
        assert waited < 5.0
    finally:
        frames.close()


def test_the_bell_stops_watching_when_the_last_stream_leaves(db):
    bell = stream.CommitBell(lambda: store.commit_watcher(store.database.obj))
    assert not bell.watching
    bell.join()
    bell.join()
    assert bell.watching
    bell.leave()
    time.sleep(stream.POLL * 2)
    assert bell.watching  # one stream is still open
    bell.leave()
    deadline = time.monotonic() + stream.POLL * 4
    while bell.watching and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not bell.watching
