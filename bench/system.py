"""The real system, started from its parts (``clinic api``, ``clinic worker STAGE``, ``clinic sweep``)
so the API can be measured alone before the workers start; plus its database and namespace."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from http.client import HTTPConnection
from pathlib import Path

from bench import REPO
from clinic.config import STAGES

#: Settings a user may choose for the benchmark; every other CLINIC_* variable is the benchmark's.
PASSED_THROUGH = ("CLINIC_BROKER_URL", "CLINIC_API_THREADS", "CLINIC_WORKER_THREADS")
DOCTORS = ("Dr. Bench One", "Dr. Bench Two", "Dr. Bench Three")
SLOT_MINUTES = 5
READY_LINE = "Worker process is ready for action"
SERVING_LINE = "Serving on http://"


def clinic_env(
    namespace: str,
    database_url: str,
    worker_processes: int,
    *,
    api_processes: int = 1,
    queue_type: str = "classic",
) -> dict[str, str]:
    """The environment of every part: own namespace and database, the run's processes and queue
    type (classic or quorum), simulated delays off, no rate limit (one key makes every request),
    and a clinic open around the clock on a 5-minute grid so thousands of distinct slots are all valid."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLINIC_") or k in PASSED_THROUGH}
    env.update(
        CLINIC_NAMESPACE=namespace,
        CLINIC_DATABASE_URL=database_url,
        CLINIC_CONFIRM_DELAY="0",
        CLINIC_UNAVAILABILITY_RATE="0",
        CLINIC_HOURS="Mon-Sun 00:00-24:00",
        CLINIC_SLOT_MINUTES=str(SLOT_MINUTES),
        CLINIC_TIMEZONE="UTC",
        CLINIC_DOCTORS=";".join(DOCTORS),
        CLINIC_WORKER_PROCESSES=str(worker_processes),
        CLINIC_API_PROCESSES=str(api_processes),
        CLINIC_QUEUE_TYPE=queue_type,
        CLINIC_RATE_LIMIT="0",
        PYTHONUNBUFFERED="1",
    )
    return env


class Part:
    """One supervised-by-us child in its own session, logging to a file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log: Path) -> None:
        self.name, self.log = name, log
        with open(log, "ab") as out:
            self.process = subprocess.Popen(
                argv, env=dict(env), cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
            )

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 40, *, signalled: bool = False) -> None:
        """SIGTERM to the leader only (Dramatiq's main forwards it and lets workers finish their
        message), unless it was ``signalled`` already: a second SIGTERM makes Dramatiq kill its
        workers mid-shutdown. The whole group is killed if it has not stopped in time."""
        if self.alive():
            if not signalled:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()


class System:
    """The API, one Dramatiq group per stage and the sweeper, against one namespace and database."""

    def __init__(self, env: Mapping[str, str], port: int, logs: Path) -> None:
        self.env, self.port, self.logs = dict(env), port, logs
        self.api: Part | None = None
        self.workers: dict[str, Part] = {}
        self.sweeper: Part | None = None
        self.relay: Part | None = None
        self.token: str | None = None

    @property
    def target(self) -> dict:
        """Where the load generator sends its requests, and the client key it sends."""
        return {"port": self.port, "token": self.token}

    def _clinic(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "clinic", *args]

    def init_db(self) -> None:
        """Create the schema and the client key the load is sent with (the API requires one)."""
        subprocess.run(self._clinic("init-db"), env=self.env, cwd=REPO, check=True, capture_output=True, timeout=60)
        created = subprocess.run(
            self._clinic("keys", "create", "--scope", "client", "--name", "bench"),
            env=self.env,
            cwd=REPO,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.token = created.stdout.strip()

    def start_api(self, timeout: float = 60) -> None:
        """``clinic api``: one server, or with CLINIC_API_PROCESSES=N a supervisor of N servers on
        one socket; ready once it answers and every server has said it is serving."""
        self.api = Part("api", self._clinic("api", "--port", str(self.port)), self.env, self.logs / "api.log")
        expected = int(self.env.get("CLINIC_API_PROCESSES", "1"))
        deadline = time.monotonic() + timeout
        while not (_answers(self.port, "/health") and self.api.log_text().count(SERVING_LINE) >= expected):
            if not self.api.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the API did not come up:\n{self.api.log_text()[-2000:]}")
            time.sleep(0.2)

    def api_pids(self) -> list[int]:
        """The API's process and, with several API processes, the servers it supervises."""
        pid = self.api.process.pid
        return [pid, *sorted(_children().get(pid, []))]

    def api_servers(self) -> list[int]:
        """The processes that serve requests: the supervised servers, or the API process itself."""
        return self.api_pids()[1:] or self.api_pids()[:1]

    def start_workers(self, timeout: float = 90) -> None:
        for stage in STAGES:
            self.workers[stage] = Part(
                f"worker-{stage}", self._clinic("worker", stage), self.env, self.logs / f"worker-{stage}.log"
            )
        self.sweeper = Part("sweeper", self._clinic("sweep"), self.env, self.logs / "sweeper.log")
        self.relay = Part("relay", self._clinic("relay"), self.env, self.logs / "relay.log")
        expected = int(self.env["CLINIC_WORKER_PROCESSES"])
        deadline = time.monotonic() + timeout
        while not all(part.log_text().count(READY_LINE) >= expected for part in self.workers.values()):
            dead = [part.name for part in self.workers.values() if not part.alive()]
            if dead or time.monotonic() > deadline:
                tails = "\n".join(part.log_text()[-1000:] for part in self.workers.values())
                raise RuntimeError(f"workers did not come up ({dead or 'timeout'}):\n{tails}")
            time.sleep(0.2)

    def worker_pids(self) -> dict[str, list[int]]:
        """The Dramatiq worker processes (not each group's main process) of every stage."""
        children = _children()
        return {
            stage: sorted(pid for pid in children.get(part.process.pid, []) if "resource_tracker" not in _cmdline(pid))
            for stage, part in self.workers.items()
        }

    def stop(self) -> None:
        parts = [self.api, self.sweeper, self.relay, *self.workers.values()]
        # The API's supervisor starts its servers in sessions of their own: stopping it stops them,
        # but should it be killed, they are killed here by pid.
        servers = self.api_pids()[1:] if self.api is not None and self.api.alive() else []
        for part in parts:
            if part is not None and part.alive():
                part.process.send_signal(signal.SIGTERM)  # all at once: they stop in parallel
        for part in parts:
            if part is not None:
                part.stop(signalled=True)
        for pid in servers:
            if "api.serve" in _cmdline(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        # Several API processes count their requests in files under the namespace (clinic's
        # metrics_directory); the run's namespace is never used again.
        shutil.rmtree(Path(tempfile.gettempdir()) / "clinic-metrics" / self.env["CLINIC_NAMESPACE"], ignore_errors=True)


def peak_rss_mib(pid: int) -> float | None:
    """The process's peak resident set (VmHWM) in MiB, or None once it is gone."""
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    return None


def new_namespace() -> str:
    return f"bench{uuid.uuid4().hex[:8]}"


def delete_namespace(url: str, namespace: str, *, extra_queues: tuple[str, ...] | list[str] = ()) -> None:
    """Remove every queue and the exchange a benchmark namespace made (they are durable): each
    stage's queue, ``.DQ`` and ``.XQ``, classic or quorum alike (deleting a queue by name does not
    depend on its type, and a quorum queue outlives its consumers just as a durable classic does)."""
    import pika
    import pika.exceptions

    with contextlib.suppress(pika.exceptions.AMQPError):
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        for stage in STAGES:
            for suffix in ("", ".DQ", ".XQ"):
                channel.queue_delete(f"{namespace}.{stage}{suffix}")
        for queue in extra_queues:
            channel.queue_delete(queue)
        channel.exchange_delete(f"{namespace}.notifications")
        connection.close()


@contextlib.contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """A fresh database on the local PostgreSQL (trust auth), dropped afterwards; yields its URL."""
    import psycopg2

    def admin(statement: str) -> None:
        connection = psycopg2.connect(
            host="127.0.0.1", port=5432, user="postgres", dbname="postgres", connect_timeout=5
        )
        connection.autocommit = True
        try:
            with connection.cursor() as cursor:
                cursor.execute(statement)
        finally:
            connection.close()

    admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _answers(port: int, path: str) -> bool:
    connection = HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def wait_answers(port: int, path: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not _answers(port, path):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing answered GET {path} on port {port} within {timeout:.0f}s")
        time.sleep(0.1)


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, IndexError, ValueError):
                stat = (entry / "stat").read_text()
                found.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    return ""
