"""The load generator, run as its own process: ``python -m bench.load < SPEC_JSON``.

It drives 127.0.0.1 over keep-alive HTTP/1.1 connections from one asyncio loop (a few tens of
microseconds of Python per request, so it is not the bottleneck on a small machine), prints
``progress N`` lines while it runs and one ``result {json}`` line at the end. Every run is
bounded by a request count and by a duration, whichever comes first.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bench.stats import rate, summary_ms

#: Seconds one request may take before it counts as an error (and its connection is dropped).
REQUEST_TIMEOUT = 30.0


def booking_body(index: int, spec: dict) -> bytes:
    """The request body of the ``index``-th booking of a run: its own (doctor, slot), never taken."""
    doctors, slot_minutes = spec["doctors"], spec["slot_minutes"]
    doctor_id = index % doctors + 1
    start = spec["slot_base"] + (index // doctors) * slot_minutes * 60
    slot = datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%d %H:%M")
    body = {"patient": f"Bench Patient {index}", "slot": slot, "doctor_id": doctor_id}
    return json.dumps(body, separators=(",", ":")).encode()


def build_request(spec: dict, number: int) -> bytes:
    """The bytes of request ``number`` of the run (POST a booking, GET a booking, or the floor),
    with the run's client key when it has one."""
    host = f"Host: 127.0.0.1:{spec['port']}\r\n"
    if spec.get("token"):
        host += f"Authorization: Bearer {spec['token']}\r\n"
    if spec["kind"] == "get":
        ids = spec["ids"]
        return f"GET /booking/{ids[number % len(ids)]} HTTP/1.1\r\n{host}\r\n".encode()
    body = booking_body(spec.get("first_index", 0) + number, spec)
    path = "/book" if spec["kind"] == "book" else "/floor"  # the floors: "floor", "same-work"
    head = f"POST {path} HTTP/1.1\r\n{host}Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


class Connection:
    """One keep-alive connection; reopened after the server closes it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        length = 0
        at = lower.find(b"content-length:")
        if at >= 0:
            length = int(lower[at + 15 : lower.index(b"\r\n", at)])
        body = await self.reader.readexactly(length) if length else b""
        if b"connection: close" in lower:
            self.close()
        return status, body

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


class Run:
    """Counts, latencies and (for bookings) the accepted ids with their send times."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.expected = {"book": 202, "get": 200, "floor": 200, "same-work": 202}[spec["kind"]]
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.accepted: list[tuple[str, float]] = []
        self.done = 0

    async def one(self, connection: Connection, number: int, sent: float) -> None:
        """Send request ``number``; latency counts from ``sent`` (the scheduled time in an open run)."""
        try:
            status, body = await asyncio.wait_for(
                connection.exchange(build_request(self.spec, number)), REQUEST_TIMEOUT
            )
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError) as error:
            connection.close()
            self.statuses[type(error).__name__] += 1
        else:
            self.latencies.append(time.monotonic() - sent)
            self.statuses[str(status)] += 1
            if status == self.expected and self.spec["kind"] == "book":
                self.accepted.append((json.loads(body)["booking_id"], sent))
        self.done += 1


async def closed_loop(run: Run, spec: dict) -> None:
    """``concurrency`` connections, each sending its next request as soon as the last is answered."""
    deadline = time.monotonic() + spec["duration"]
    numbers = iter(range(spec["count"]))

    async def client() -> None:
        connection = Connection(spec["port"])
        for number in numbers:
            if time.monotonic() > deadline:
                break
            await run.one(connection, number, time.monotonic())
        connection.close()

    await asyncio.gather(*(client() for _ in range(spec["concurrency"])))


async def open_loop(run: Run, spec: dict) -> None:
    """Requests at a fixed ``rate`` whatever the answers take (latency counts from the schedule,
    so a slow server cannot hide its queueing); at most ``concurrency`` connections in flight."""
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(spec["concurrency"]):
        pool.put_nowait(Connection(spec["port"]))
    started = time.monotonic()
    tasks = set()

    async def send(number: int, scheduled: float) -> None:
        connection = await pool.get()
        try:
            await run.one(connection, number, scheduled)
        finally:
            pool.put_nowait(connection)

    for number in range(spec["count"]):
        scheduled = started + number / spec["rate"]
        if scheduled - started > spec["duration"]:
            break
        delay = scheduled - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(send(number, scheduled))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait().close()


async def report_progress(run: Run) -> None:
    while True:
        print(f"progress {run.done}", flush=True)
        await asyncio.sleep(0.2)


async def main_async(spec: dict) -> dict[str, Any]:
    run = Run(spec)
    reporter = asyncio.create_task(report_progress(run))
    started = time.monotonic()
    await (closed_loop if spec["mode"] == "closed" else open_loop)(run, spec)
    elapsed = time.monotonic() - started
    reporter.cancel()
    ok = run.statuses.get(str(run.expected), 0)
    return {
        "requests": run.done,
        "ok": ok,
        "errors": run.done - ok,
        "statuses": dict(run.statuses),
        "elapsed_s": round(elapsed, 3),
        "rps": rate(ok, elapsed),
        **summary_ms(run.latencies),
        "cpu_s": round(time.process_time(), 3),  # the generator's own cost, to set beside the system's
        "accepted": run.accepted,
    }


def main() -> int:
    spec = json.loads(sys.stdin.read())  # stdin, not argv: a list of booking ids outgrows an argument
    result = asyncio.run(main_async(spec))
    print("result " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
