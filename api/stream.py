"""``GET /events``: the booking events as Server-Sent Events, read from the database.

Why the database and not the broker: the events are rows with increasing ids, and a client that
reconnects with ``Last-Event-ID`` must first get what it missed from the database anyway; reading
the live ones the same way makes "no gap, no duplicate" hold by construction, with no second path
to keep in step. ``clinic.events.Watermark`` keeps a late-committing smaller id from being skipped.
A stream reads again as soon as the database sees a commit: one :class:`CommitBell` per process
rings every open stream (the relay's commit watcher, running only while a stream is open), and
each stream also reads every ``POLL`` seconds whatever happens.

A stream holds one waitress thread for its whole life, so each API process serves at most
``CLINIC_STREAM_MAX`` (default half its threads) and answers 503 with Retry-After beyond that:
streams never starve ``POST /book``. A stream ends after ``CLINIC_STREAM_MAX_SECONDS`` (clients
reconnect with ``Last-Event-ID``), and when the client has gone its next write fails (a comment
line every ``HEARTBEAT`` seconds makes sure there is one), which frees the thread."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator

import falcon

from api.auth import owner
from api.contract import Operation, Reply
from api.errors import ProblemError
from api.metrics import OPEN_STREAMS
from api.resources import query
from clinic import bookings, events, keys, store
from clinic.config import Settings
from clinic.errors import InvalidField, InvalidHeader

#: Seconds between looks at the database while a stream is open and no commit rang.
POLL = 0.25
#: Seconds between the bell's looks at a SQLite file (PostgreSQL tells at once): a person watching
#: a screen does not see 20 ms. Measured on an idle API process with one stream open: the stream's
#: own reads cost 0.65% of a core; the bell adds 1% looking every 20 ms, 4% every 2 ms (the relay's).
BELL_EVERY = 0.02
#: Seconds between comment lines that keep proxies (and the client's idle timers) from closing it.
HEARTBEAT = 15.0


class StreamSlots:
    """How many streams this process may hold at once; ``open`` is how many it holds now."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self.open >= self.limit:
                return False
            self.open += 1
        OPEN_STREAMS.inc()
        return True

    def give(self) -> None:
        with self._lock:
            self.open -= 1
        OPEN_STREAMS.dec()


class CommitBell:
    """Rings when another connection commits to the database, for every open stream of this
    process at once. One thread watches (``store.commit_watcher``), and only while a stream is open;
    with a database that has no watcher, ``wait`` just sleeps."""

    def __init__(self, watcher_factory: Callable[[], object | None]) -> None:
        self._factory = watcher_factory
        self._watcher: object | None = None
        self._changed = threading.Condition()
        self._rung = 0
        self._listeners = 0
        self._thread: threading.Thread | None = None

    def join(self) -> None:
        with self._changed:
            self._listeners += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._watch, name="commit-bell", daemon=True)
                self._thread.start()

    def leave(self) -> None:
        with self._changed:
            self._listeners -= 1

    @property
    def watching(self) -> bool:
        """Whether its thread is watching the database (only while a stream is open)."""
        thread = self._thread
        return thread is not None and thread.is_alive()

    def mark(self) -> int:
        """How often it has rung: take it before reading, then ``wait(mark, ...)`` misses no commit."""
        return self._rung

    def wait(self, since: int, timeout: float) -> None:
        """Until it rings after ``since`` (or at once if it already has), at most ``timeout``."""
        with self._changed:
            self._changed.wait_for(lambda: self._rung != since, timeout)

    def _watch(self) -> None:
        never = threading.Event()
        try:
            if self._watcher is None:
                self._watcher = self._factory()
        except Exception:  # the database is away: the streams read every POLL until it is back
            self._watcher = None
        while True:
            with self._changed:
                if self._listeners <= 0 or self._watcher is None:
                    self._thread = None
                    return
            try:
                rang = self._watcher.wait(POLL, never)
            except Exception:  # a watcher that failed is made again by the next stream
                self._watcher, rang = None, False
            if rang:
                with self._changed:
                    self._rung += 1
                    self._changed.notify_all()


def frame(event: events.Event) -> bytes:
    data = json.dumps(event.payload, ensure_ascii=False, separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.type}\ndata: {data}\n\n".encode()


class Stream:
    """The response body: frames until the time is up; ``close`` (called by the server when the
    response ends, the client went away or it never started) gives the slot back, once."""

    def __init__(self, frames: Iterator[bytes], slots: StreamSlots) -> None:
        self.frames, self.slots, self._closed = frames, slots, False

    def __iter__(self) -> Stream:
        return self

    def __next__(self) -> bytes:
        return next(self.frames)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.frames.close()
            self.slots.give()


def frames(
    settings: Settings,
    cursor: int,
    *,
    owner: str | None,
    booking_id: str | None,
    bell: CommitBell,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[bytes]:
    """Every event after ``cursor`` the caller may see, from the database, then each new one, read
    again when ``bell`` rings; the stream listens to the bell from its start until it is closed."""
    bell.join()
    try:
        yield b": events of the clinic's bookings\n\n"
        watermark = events.Watermark(clock=clock)
        started = last_write = clock()
        while clock() - started < settings.stream_max_seconds:
            rung = bell.mark()
            with store.database.connection_context():
                upto = watermark.safe(cursor)
                found = events.events_after(settings, cursor, upto, owner=owner, booking_id=booking_id)
            for event in found:
                yield frame(event)
            if found:
                last_write = clock()
            cursor = found[-1].id if len(found) == events.PAGE else upto
            if len(found) == events.PAGE:
                continue
            if clock() - last_write >= HEARTBEAT:
                yield b": keep-alive\n\n"
                last_write = clock()
            bell.wait(rung, POLL)
    finally:
        bell.leave()


class EventStream:
    """``GET /events[?booking_id=][&last_event_id=]``: the caller's booking events as they happen."""

    scope = keys.CLIENT
    admin_may_read = True
    operations = {
        "get": Operation(
            "streamEvents",
            "Booking events as Server-Sent Events",
            description=(
                "`text/event-stream`: each event is `id: <event id>`, `event: <type>`, `data: <payload JSON>`. "
                "Send `Last-Event-ID` (or `last_event_id`) to get first every event after it, then live ones. "
                "A comment line keeps the stream open; it ends after CLINIC_STREAM_MAX_SECONDS (reconnect)."
            ),
            parameters=(
                {"name": "booking_id", "in": "query", "required": False, "schema": {"type": "string"}},
                {
                    "name": "last_event_id",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "integer", "minimum": 0},
                },
                {"name": "Last-Event-ID", "in": "header", "required": False, "schema": {"type": "string"}},
            ),
            replies=(
                Reply(200, "The stream (text/event-stream)"),
                Reply(400, "Last-Event-ID is not an event id"),
                Reply(404, "No booking has that booking_id, or it is another client's"),
                Reply(422, "last_event_id is not an event id"),
                Reply(503, "This API process holds as many streams as it may; ask again after Retry-After"),
            ),
        )
    }

    def __init__(self, settings: Settings, slots: StreamSlots | None = None, bell: CommitBell | None = None) -> None:
        self.settings = settings
        self.slots = slots or StreamSlots(settings.streams_per_process)
        self.bell = bell or CommitBell(lambda: store.commit_watcher(store.database.obj, every=BELL_EVERY))

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = query(req)
        viewer = owner(req)
        booking_id = params.get("booking_id")
        if booking_id is not None:
            booking_id = bookings.get_booking(booking_id, owner=viewer).id
        cursor = _last_event_id(req.get_header("Last-Event-ID"), params.get("last_event_id"))
        if cursor is None:
            cursor = events.latest_id()
        if not self.slots.take():
            raise ProblemError(
                falcon.HTTP_503, "this API process holds as many event streams as it may", headers={"Retry-After": "5"}
            )
        resp.content_type = "text/event-stream"
        resp.cache_control = ["no-store"]
        resp.set_header("X-Accel-Buffering", "no")  # a buffering proxy would hold the frames back
        found = frames(self.settings, cursor, owner=viewer, booking_id=booking_id, bell=self.bell)
        resp.stream = Stream(found, self.slots)


def _last_event_id(header: str | None, parameter: str | None) -> int | None:
    if header is not None:
        if not (header.strip().isascii() and header.strip().isdigit()) or len(header.strip()) > 18:
            raise InvalidHeader("Last-Event-ID", "must be an event id, as a stream's `id:` lines give it")
        return int(header.strip())
    if parameter is not None:
        if not (parameter.isascii() and parameter.isdigit()) or len(parameter) > 18:
            raise InvalidField("last_event_id", "must be an event id, as a stream's `id:` lines give it")
        return int(parameter)
    return None
