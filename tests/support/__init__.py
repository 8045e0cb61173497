"""Test helpers that drive the real pieces: processes, HTTP, the broker, the databases."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
from dramatiq.common import dq_name, xq_name

from clinic.bookings import FINAL_STATUSES
from clinic.config import STAGES

RABBITMQ_URL = os.environ.get("CLINIC_TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")
REPO = Path(__file__).resolve().parents[2]


def rabbitmq_answers(url: str = RABBITMQ_URL) -> bool:
    try:
        pika.BlockingConnection(pika.URLParameters(url)).close()
        return True
    except pika.exceptions.AMQPError:
        return False


def delete_namespace(url: str, namespace: str) -> None:
    """Remove every queue and the exchange a test namespace made (they are durable)."""
    with contextlib.suppress(pika.exceptions.AMQPError):
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for stage in STAGES:
            queue = f"{namespace}.{stage}"
            for name in (queue, dq_name(queue), xq_name(queue)):
                channel.queue_delete(name)
        channel.exchange_delete(f"{namespace}.notifications")
        connection.close()


@contextlib.contextmanager
def postgres_admin() -> Iterator[Any]:
    import psycopg2

    connection = psycopg2.connect(host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=5)
    connection.autocommit = True
    try:
        with connection.cursor() as cursor:
            yield cursor
    finally:
        connection.close()


def clinic_environment(namespace: str, database_url: str, **overrides: str) -> dict[str, str]:
    """Environment for real ``clinic`` processes: own namespace and database, quick pipeline
    (no simulated delays or failures, small retry backoffs), no rate limit (the rate-limit test
    sets its own); ``overrides`` are CLINIC_* values."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_")}
    env.update(
        CLINIC_NAMESPACE=namespace,
        CLINIC_DATABASE_URL=database_url,
        CLINIC_CONFIRM_DELAY="0",
        CLINIC_UNAVAILABILITY_RATE="0",
        CLINIC_RETRY_MIN_BACKOFF_MS="50",
        CLINIC_RETRY_MAX_BACKOFF_MS="200",
        CLINIC_SWEEP_AFTER="60",
        CLINIC_WORKER_THREADS="4",
        CLINIC_RATE_LIMIT="0",
    )
    env.update(overrides)
    return env


def slot(hour: int = 10, minute: int = 0, *, weekday: int = 0, weeks_ahead: int = 1) -> str:
    """A clinic-local slot text on a given weekday (0 Monday) of a coming week, e.g. '2026-12-07 10:00'."""
    today = datetime.now(timezone.utc).date()
    day = today + timedelta(days=(weekday - today.weekday()) % 7 + 7 * weeks_ahead)
    return f"{day.isoformat()} {hour:02d}:{minute:02d}"


def queue_stats(*fields: str) -> dict[str, dict]:
    """What RabbitMQ itself reports of every queue (``rabbitmqctl list_queues``), by queue name."""
    listing = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "name", *fields, "--formatter", "json"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return {queue["name"]: queue for queue in json.loads(listing or "[]")}


def free_port() -> int:
    """A port for a server a test starts (see ``docker.listen_port``: below the ephemeral range, so
    no outgoing connection can take it between now and the server's bind)."""
    from tests.support.docker import listen_port

    return listen_port()


def wait_until(predicate: Callable[[], Any], *, timeout: float = 30, interval: float = 0.1, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(interval)


class Response:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    port: int,
    method: str,
    path: str,
    body: bytes | str | dict | list | None = None,
    headers: dict[str, str] | None = None,
    *,
    timeout: float = 10,
) -> Response:
    """One request over a fresh connection to 127.0.0.1 (dict/list bodies are sent as JSON)."""
    headers = dict(headers or {})
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
        headers.setdefault("Content-Type", "application/json")
    if isinstance(body, str):
        body = body.encode("utf-8")
    connection = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=body, headers=headers)
        reply = connection.getresponse()
        return Response(reply.status, {k.lower(): v for k, v in reply.getheaders()}, reply.read())
    finally:
        connection.close()


#: A client key as ``clinic up`` prints it, alone on its line.
PRINTED_KEY = re.compile(r"^ck_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$", re.MULTILINE)


class Clinic:
    """A real ``clinic up`` (waitress API + one dramatiq group per queue + sweeper) for one test.

    ``token`` is the client key its requests send: the ``local`` key ``clinic up`` prints when the
    database has no client key yet, unless one is given."""

    def __init__(
        self,
        env: dict[str, str],
        log_path: Path,
        *,
        port: int | None = None,
        token: str | None = None,
        module: str = "clinic",
    ) -> None:
        self.env = env
        self.port = port or free_port()
        self.module = module  # run as ``python -m MODULE up --port PORT``
        self.log_path = log_path
        self.token = token
        self.process: subprocess.Popen | None = None

    def start(self, *, wait: bool = True) -> Clinic:
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", self.module, "up", "--port", str(self.port)],
            env=self.env,
            cwd=REPO,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        if wait:
            try:
                self.wait_ready()
            except BaseException:
                self.stop()  # a fixture that fails before its yield gets no teardown: leave nothing running
                raise
        return self

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            assert self.process.poll() is None, f"clinic up exited early:\n{self.log_text()[-3000:]}"
            try:
                return http(self.port, "GET", "/health", timeout=2).status == 200 and self.workers_ready()
            except OSError:
                return False

        wait_until(ready, timeout=timeout, interval=0.2, what="clinic up to answer /health")
        if self.token is None and (printed := PRINTED_KEY.findall(self.log_text())):
            self.token = printed[-1]

    def workers_ready(self) -> bool:
        return self.log_text().count("Worker process is ready for action") >= len(STAGES)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 60) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            raise
        finally:
            self.log.close()

    def worker_pids(self, stage: str) -> list[int]:
        """PIDs of the dramatiq worker processes (not the group's main process) of one stage."""
        namespace = self.env["CLINIC_NAMESPACE"]
        pattern = f"--queues {namespace}.{stage}"
        mains = [pid for pid, cmd in _processes() if pattern in cmd and "dramatiq" in cmd]
        return [pid for pid, _ in _processes() if _parent(pid) in mains]

    def api_pids(self) -> list[int]:
        """PIDs of the API's waitress processes serving this clinic's port."""
        pattern = f"--port {self.port} "
        return [pid for pid, cmd in _processes() if "api.serve" in cmd and pattern in cmd + " "]

    def http(self, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None, **kw) -> Response:
        """``http`` to this clinic, with its client key unless the headers carry an Authorization."""
        headers = dict(headers or {})
        if self.token and "Authorization" not in headers:
            headers["Authorization"] = f"Bearer {self.token}"
        return http(self.port, method, path, body, headers, **kw)

    def book(self, patient: str = "Ana Pérez", when: str | None = None, **fields: Any) -> Response:
        return self.http("POST", "/book", {"patient": patient, "slot": when or slot(), **fields})

    def booking(self, booking_id: str) -> dict:
        response = self.http("GET", f"/booking/{booking_id}")
        assert response.status == 200, response.body
        return response.json()

    def wait_final(self, booking_id: str, timeout: float = 60) -> dict:
        return wait_until(
            lambda: (b := self.booking(booking_id))["status"] != "pending" and b,
            timeout=timeout,
            interval=0.1,
            what=f"booking {booking_id} to be decided",
        )


def _processes() -> list[tuple[int, str]]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                found.append((int(entry.name), cmd))
    return found


def _parent(pid: int) -> int:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return int(stat.rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return -1


class Subscriber:
    """Collects notifications from the namespace's exchange in a background thread."""

    def __init__(self, url: str, namespace: str, keys: tuple[str, ...] = FINAL_STATUSES) -> None:
        self.url, self.exchange, self.keys = url, f"{namespace}.notifications", keys
        self.received: list[tuple[pika.BasicProperties, dict]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Subscriber:
        self._thread.start()
        assert self._ready.wait(10), "subscriber did not bind in time"
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        from clinic.broker.notifications import subscribe

        for properties, body in subscribe(
            self.url, self.exchange, self.keys, stop=self._stop.is_set, ready=self._ready.set
        ):
            self.received.append((properties, body))

    def for_booking(self, booking_id: str) -> list[tuple[pika.BasicProperties, dict]]:
        return [(p, b) for p, b in self.received if b.get("booking_id") == booking_id]
