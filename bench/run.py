"""The benchmark's phases, in order: the floors, the API alone (and then by turns with the
same-work floor), the pipeline at saturation, at half of it and at a fixed steady rate, the
pipeline again with other numbers of API and worker processes, and last the same-work and broker
floors again (a shared machine speeds up and slows down during a run; ``bench.report`` sets the
figures against both readings); all into one results dict."""

from __future__ import annotations

import contextlib
import os
import random
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

from bench import REPO, broker_floor, free_slots, integrity, statements
from bench.arrivals import Arrivals
from bench.cpu import CpuMeter, pids_named
from bench.driver import drive
from bench.http_floor import floor_argv
from bench.plan import Plan
from bench.profile import Profiler
from bench.same_work import STAGE as SAME_WORK
from bench.same_work import same_work_argv
from bench.stats import rate, summary_ms
from bench.system import (
    DOCTORS,
    SLOT_MINUTES,
    System,
    clinic_env,
    delete_namespace,
    new_namespace,
    peak_rss_mib,
    postgres_database,
    wait_answers,
)
from clinic.bookings import FINAL_STATUSES
from clinic.config import Settings

OUTCOMES = FINAL_STATUSES
#: Figures of a load run worth keeping (the accepted ids are used, not reported).
KEPT = ("requests", "ok", "errors", "rps", "p50_ms", "p95_ms", "p99_ms", "max_ms", "elapsed_s", "statuses", "cpu_s")


class Slots:
    """Hands out booking numbers; number n is its own (doctor, slot), so no booking is refused for
    a taken slot. Slots start tomorrow on the 5-minute grid: all in the future, well within a year."""

    def __init__(self) -> None:
        step = SLOT_MINUTES * 60
        self.base = (int(time.time()) // step + 1) * step + 86_400
        self.next = 0

    def reserve(self, count: int) -> dict:
        fields = {"first_index": self.next, "slot_base": self.base, "doctors": len(DOCTORS)}
        self.next += count
        return {**fields, "slot_minutes": SLOT_MINUTES}


class Benchmark:
    """One run: ``Benchmark(plan, ...).run()`` returns the results; ``ok`` is False when a booking
    was lost, left pending or refused."""

    def __init__(
        self,
        plan: Plan,
        *,
        database: str,
        logs: Path,
        queue_type: str = "classic",
        profile: Path | None = None,
        profile_gil: bool = False,
    ) -> None:
        self.plan, self.database, self.logs, self.queue_type = plan, database, logs, queue_type
        self.profile_dir, self.profile_gil = profile, profile_gil
        self.profiles: dict[str, dict] = {}
        self.settings = Settings.from_env(clinic_env("bench", "sqlite:///unused.db", 1, queue_type=queue_type))
        self.slots = Slots()
        self.checks: list[dict] = []
        self.results: dict = {}

    def run(self) -> dict:
        self.results["floors"] = {
            "http": self.http_floor(),
            "same_work": self.same_work_floor(),
            "broker": self.broker_floor(),
        }
        self.results["statements"] = statements.count(statements.bench_env())
        self.results["slots"] = self.free_slots()
        (api_processes, worker_processes), *others = self.plan.scaling
        first = self.system(api_processes, worker_processes, full=True)
        self.results["api"] = first.pop("api")
        self.results["pipeline"] = first["pipeline"]
        self.results["memory"] = first["memory"]
        scaling = [self.scaling_entry(first)]
        for api_processes, worker_processes in others:
            scaling.append(self.scaling_entry(self.system(api_processes, worker_processes, full=False)))
        self.results["scaling"] = scaling
        # The floors that move with the machine, read again: the ratios take both readings.
        self.results["floors_end"] = {
            "same_work": self.same_work_floor("same-work floor, again"),
            "broker": self.broker_floor("broker floor, again"),
        }
        self.results["integrity"] = {**integrity.combine(self.checks), "runs": self.checks}
        if self.profiles:
            self.results["profile"] = self.profiles
        return self.results

    def scaling_entry(self, run: dict) -> dict:
        return {
            "api_processes": run["api_processes"],
            "worker_processes": run["worker_processes"],
            "worker_threads": self.settings.worker_threads,
            "bookings": run["pipeline"]["bookings"],
            "rate": run["pipeline"]["rate"],
            "max_worker_peak_rss_mib": run["memory"]["max_worker_peak_rss_mib"],
        }

    # -- floors ---------------------------------------------------------------------------------

    def http_floor(self) -> dict:
        """A bare Falcon app answering a constant body: what waitress and Falcon cost alone."""
        port = free_port()
        with self.served("HTTP floor", floor_argv(self.settings, port), port, None) as server:
            return self.floor_load("HTTP floor", {"port": port, "kind": "floor"}, server)

    def same_work_floor(self, label: str = "same-work floor") -> dict:
        """``bench.same_work``: commit one row and publish one confirmed message per request, by
        hand, on this run's database and broker: what POST /book's work costs done plainly."""
        with self.same_work_server(label) as (port, server):
            return self.floor_load(label, {"port": port, "kind": "same-work"}, server)

    @contextlib.contextmanager
    def same_work_server(self, label: str) -> Iterator[tuple[int, subprocess.Popen]]:
        """The same-work floor served on a free port, in a namespace and database of its own."""
        namespace = new_namespace()
        with self.database_url(namespace) as url:
            env = clinic_env(namespace, url, 1, queue_type=self.queue_type)
            try:
                port = free_port()
                with self.served(label, same_work_argv(self.settings, port), port, env) as server:
                    yield port, server
            finally:
                delete_namespace(self.settings.broker_url, namespace, extra_queues=[f"{namespace}.{SAME_WORK}"])

    def floor_load(self, label: str, target: dict, server: subprocess.Popen) -> dict:
        """A floor's saturation and half-rate figures, loaded as POST /book is loaded, with its
        server's CPU per request."""
        with CpuMeter({"floor server": lambda: [server.pid]}) as meter:
            figures, _ = self.http_load(label, target, Slots())
        requests = figures["saturation"]["ok"] + figures["half"]["ok"]
        load_cpu = figures["saturation"]["cpu_s"] + figures["half"]["cpu_s"]
        figures["cpu"] = meter.result(requests, {"load generator": load_cpu})
        return figures

    @contextlib.contextmanager
    def served(self, label: str, argv: list[str], port: int, env: dict | None) -> Iterator[subprocess.Popen]:
        """A floor's app on waitress, served as the API is and answering, for the block; stopped
        after it whatever happens."""
        log = open(self.logs / f"{label.replace(' ', '-')}.log", "ab")
        server = subprocess.Popen(argv, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_answers(port, "/floor")
            yield server
        finally:
            server.terminate()
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
            log.close()

    def broker_floor(self, label: str = "broker floor") -> dict:
        namespace = new_namespace()
        try:
            return broker_floor.measure(
                self.settings.broker_url,
                namespace,
                self.plan.broker_messages,
                timeout=self.plan.drain_seconds,
                queue_type=self.queue_type,
                label=label,
            )
        finally:
            delete_namespace(self.settings.broker_url, namespace)

    def free_slots(self) -> dict:
        """GET /slots over 31 days for every doctor, with 10,000 bookings stored (``bench.free_slots``)."""
        namespace = new_namespace()
        with self.database_url(namespace) as url:
            try:
                return free_slots.measure(
                    url,
                    namespace,
                    self.logs / f"{namespace}-slots",
                    port=free_port(),
                    requests=self.plan.slots_requests,
                    api_processes=self.plan.api_processes,
                    queue_type=self.queue_type,
                )
            finally:
                delete_namespace(self.settings.broker_url, namespace)

    # -- HTTP load ------------------------------------------------------------------------------

    def http_load(self, label: str, target: dict, slots: Slots | None) -> tuple[dict, list]:
        """Saturation (closed loop), then half of the saturated rate (open loop): both figures."""
        plan = self.plan
        spec = {**target, "mode": "closed", "count": plan.http_count, "duration": plan.http_seconds}
        spec["concurrency"] = plan.concurrency
        saturated = drive({**spec, **(slots.reserve(plan.http_count) if slots else {})}, f"{label} saturation")
        half_rate = max(1.0, saturated["rps"] / 2)
        count = int(half_rate * plan.http_seconds) + 1
        spec.update(mode="open", rate=half_rate, count=count, concurrency=plan.concurrency * 4)
        half = drive({**spec, **(slots.reserve(count) if slots else {})}, f"{label} at half")
        figures = {"saturation": _kept(saturated), "half": {"rate": round(half_rate, 1), **_kept(half)}}
        return figures, saturated["accepted"] + half["accepted"]

    # -- the real system ------------------------------------------------------------------------

    def system(self, api_processes: int, worker_processes: int, *, full: bool) -> dict:
        """Start the system with ``api_processes`` API processes and ``worker_processes`` workers per
        queue and measure it; with ``full`` the API is measured alone first and the pipeline's
        latency at half its rate afterwards."""
        namespace = new_namespace()
        processes = {"api_processes": api_processes, "worker_processes": worker_processes}
        with self.database_url(namespace) as url:
            env = clinic_env(namespace, url, worker_processes, api_processes=api_processes, queue_type=self.queue_type)
            logs = self.logs / f"{namespace}-a{api_processes}w{worker_processes}"
            logs.mkdir(parents=True, exist_ok=True)
            system = System(env, free_port(), logs)
            arrivals = Arrivals(self.settings.broker_url, f"{namespace}.notifications", OUTCOMES)
            accepted: list[str] = []
            results: dict = dict(processes)
            try:
                system.init_db()
                with arrivals:  # bound before the first booking, so no notification goes unseen
                    system.start_api()
                    if full:
                        results["api"] = self.api_alone(system, accepted)
                    system.start_workers()
                    if accepted:
                        arrivals.wait_for(accepted, timeout=self.plan.drain_seconds, label="backlog of the API run")
                    label = f"pipeline api x{api_processes} workers x{worker_processes}"
                    results["pipeline"] = self.pipeline(system, arrivals, accepted, label, full)
                    results["memory"] = self.memory(system)
                    check = integrity.check(url, accepted, arrivals.statuses)
                    check.update(processes, duplicates=arrivals.duplicates)
                    self.checks.append(check)
            finally:
                system.stop()
                delete_namespace(self.settings.broker_url, namespace)
        return results

    @contextlib.contextmanager
    def database_url(self, namespace: str) -> Iterator[str]:
        if self.database == "postgresql":
            with postgres_database(namespace) as url:
                yield url
        else:
            yield f"sqlite:///{self.logs / f'{namespace}.db'}"

    def api_alone(self, system: System, accepted: list[str]) -> dict:
        """``POST /book`` and ``GET /booking/{id}`` with no worker running (the broker takes the
        messages), then ``POST /book`` and the same-work floor by turns (``paired_rounds``)."""
        with self.profiler({"api-alone": system.api_servers()[0]}), self.cpu_meter(system) as meter:
            post, booked = self.http_load("POST /book", {**system.target, "kind": "book"}, self.slots)
        load_cpu = post["saturation"]["cpu_s"] + post["half"]["cpu_s"]
        post["cpu"] = meter.result(len(booked), {"load generator": load_cpu})
        accepted.extend(booking_id for booking_id, _ in booked)
        ids = [booking_id for booking_id, _ in booked] or ["00000000-0000-4000-8000-000000000000"]
        get, _ = self.http_load("GET /booking/{id}", {**system.target, "kind": "get", "ids": ids}, None)
        return {"post_book": post, "get_booking": get, "paired": self.paired_rounds(system, accepted)}

    def paired_rounds(self, system: System, accepted: list[str]) -> list[dict]:
        """``POST /book`` set against the same-work floor in rounds: both servers up, each loaded in
        turn (saturation, then half of it) right after the other, ``plan.paired_rounds`` times. A
        shared machine's speed moves by a fifth within a run; loads seconds apart see the same
        machine, so each round's ratio is the code's, and the median of the rounds is the figure."""
        rounds = []
        with self.same_work_server("same-work floor, paired") as (port, _):
            for number in range(1, self.plan.paired_rounds + 1):
                floor, _ = self.http_load(
                    f"round {number}: same-work floor", {"port": port, "kind": "same-work"}, Slots()
                )
                post, booked = self.http_load(
                    f"round {number}: POST /book", {**system.target, "kind": "book"}, self.slots
                )
                accepted.extend(booking_id for booking_id, _ in booked)
                rounds.append({"same_work": floor, "post_book": post})
        return rounds

    def pipeline(self, system: System, arrivals: Arrivals, accepted: list[str], label: str, full: bool) -> dict:
        """Bookings a second from ``POST /book`` to the notification, over ``pipeline_bookings`` (the
        full run) or ``scaling_bookings`` (the others, which only compare rates)."""
        plan = self.plan
        count = plan.pipeline_bookings if full else min(plan.scaling_bookings, plan.pipeline_bookings)
        spec = {**system.target, "kind": "book", "mode": "closed", "count": count}
        spec.update(duration=plan.drain_seconds, concurrency=plan.concurrency, **self.slots.reserve(count))
        with self.profiler(self.pipeline_targets(system) if full else {}), self.cpu_meter(system) as meter:
            load = drive(spec, f"{label} POST /book")
            ids = [booking_id for booking_id, _ in load["accepted"]]
            accepted.extend(ids)
            arrivals.wait_for(ids, timeout=plan.drain_seconds, label=f"{label} notified")
        figures = {**self.finish_line(load["accepted"], arrivals), "post_book_rps": load["rps"]}
        figures["post_book_p99_ms"] = load["p99_ms"]
        figures["cpu"] = meter.result(len(ids), {"load generator": load["cpu_s"]})
        if full and figures["rate"]:
            half = figures["rate"] / 2
            figures["half"] = self.pipeline_open_loop(system, arrivals, accepted, half, plan.half_seconds, "at half")
            steady, seconds = plan.steady_rate, plan.steady_seconds
            label = f"at {steady:g}/s steady"
            figures["steady"] = self.pipeline_open_loop(system, arrivals, accepted, steady, seconds, label)
        return figures

    def pipeline_open_loop(
        self, system: System, arrivals: Arrivals, accepted: list[str], rate: float, seconds: float, label: str
    ) -> dict:
        """End-to-end latency of each booking (request sent to notification seen) when bookings arrive
        at ``rate`` a second for ``seconds``, whatever the answers take (open loop)."""
        count = max(20, int(rate * seconds))
        spec = {**system.target, "kind": "book", "mode": "open", "rate": rate, "count": count}
        spec.update(duration=seconds + 1, concurrency=self.plan.concurrency * 4)
        load = drive({**spec, **self.slots.reserve(count)}, f"pipeline {label} POST /book")
        ids = [booking_id for booking_id, _ in load["accepted"]]
        accepted.extend(ids)
        arrivals.wait_for(ids, timeout=self.plan.drain_seconds, label=f"pipeline {label} notified")
        latencies = [arrivals.first[i] - sent for i, sent in load["accepted"] if i in arrivals.first]
        return {
            "rate": round(rate, 1),
            "bookings": len(ids),
            **summary_ms(latencies),
            "post_book_p50_ms": load["p50_ms"],
            "post_book_p99_ms": load["p99_ms"],
        }

    @staticmethod
    def finish_line(sent: list, arrivals: Arrivals) -> dict:
        arrived = [arrivals.first[booking_id] for booking_id, _ in sent if booking_id in arrivals.first]
        if not sent or not arrived:
            return {"bookings": len(sent), "arrived": len(arrived), "elapsed_s": None, "rate": 0.0}
        elapsed = max(arrived) - min(stamp for _, stamp in sent)
        return {
            "bookings": len(sent),
            "arrived": len(arrived),
            "elapsed_s": round(elapsed, 3),
            "rate": rate(len(arrived), elapsed),
        }

    @contextlib.contextmanager
    def profiler(self, targets: dict[str, int]) -> Iterator[None]:
        """py-spy on ``targets`` (name: pid) for the block, when ``--profile`` asked for it."""
        if self.profile_dir is None or not targets:
            yield
            return
        with Profiler(self.profile_dir, targets, gil=self.profile_gil) as profiler:
            yield
        self.profiles.update(profiler.summary())

    def cpu_meter(self, system: System) -> CpuMeter:
        """CPU of every part: the API and each worker group count their main process and its children."""

        def group(part) -> list[int]:
            return [part.process.pid, *system.worker_pids().get(part.name.removeprefix("worker-"), [])]

        groups = {"api": system.api_pids}
        for part in system.workers.values():
            groups[part.name] = lambda part=part: group(part)
        for name in ("relay", "sweeper"):  # started with the workers
            groups[name] = lambda name=name: [getattr(system, name).process.pid] if getattr(system, name) else []
        groups["rabbitmq"] = lambda: pids_named("beam.smp")
        if self.database == "postgresql":
            groups["postgresql"] = lambda: pids_named("postgres")
        groups["bench (subscriber)"] = lambda: [os.getpid()]
        return CpuMeter(groups)

    @staticmethod
    def pipeline_targets(system: System) -> dict[str, int]:
        """The API, the first worker of each stage that has work (nothing is rejected), and the
        events relay."""
        targets = {"api": system.api_servers()[0]}
        for stage, pids in system.worker_pids().items():
            if pids and stage != "reject":
                targets[f"worker-{stage}"] = pids[0]
        if system.relay is not None and system.relay.alive():
            targets["relay"] = system.relay.process.pid
        return targets

    @staticmethod
    def memory(system: System) -> dict:
        workers = {stage: [peak_rss_mib(pid) for pid in pids] for stage, pids in system.worker_pids().items()}
        known = [value for values in workers.values() for value in values if value is not None]
        servers = [value for value in map(peak_rss_mib, system.api_servers()) if value is not None]
        return {
            "api_peak_rss_mib": max(servers, default=None),  # the largest server (not their supervisor)
            "worker_peak_rss_mib": workers,
            "max_worker_peak_rss_mib": max(known, default=None),
        }


def _kept(result: dict) -> dict:
    return {key: result[key] for key in KEPT if key in result}


def free_port() -> int:
    """A free port below the kernel's ephemeral range for a server started later: a port found free
    in that range can meanwhile become an outgoing connection's source port (the load phases open
    thousands), and the server then fails with EADDRINUSE."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    pick = random.SystemRandom()
    for _ in range(1000):
        port = pick.randrange(20000, low)
        if port in range(25600, 25700):  # Erlang distribution ports of the RabbitMQ nodes
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between 20000 and {low}")
