"""The clinic on a three-node RabbitMQ cluster with quorum queues: a node killed under load, a
poison message, and the rolling restart of an upgrade lose nothing."""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import peewee
import pytest

from clinic.broker.deadletters import DeadLetters
from clinic.config import STAGES, Settings
from clinic.store.models import Booking, BookingEvent
from tests.cluster.conftest import start
from tests.support import Clinic, slot, wait_until

pytestmark = pytest.mark.cluster


#: The load offered while a node is killed: below what 2 cores sustain through three quorum hops
#: (about 75 bookings/s unpaced), so that a dip or a backlog shows in the figures, and slow enough
#: that the node is back before the last post.
OFFERED_PER_SECOND = 40


def booking_request(n: int) -> dict:
    """Booking ``n`` of a run: over 5 weekdays x 20 slots x 3 doctors (300 places), so most ask
    for a place another asked for first and must be rejected as taken."""
    return {
        "patient": f"Patient {n}",
        "slot": slot(8 + (n % 20) // 2, 30 * (n % 2), weekday=(n // 20) % 5),
        "doctor_id": 1 + (n // 100) % 3,
    }


def requests(count: int) -> list[dict]:
    return [booking_request(n) for n in range(count)]


class Poster:
    """Posts bookings from 8 threads, noting when each was accepted."""

    def __init__(self, clinic: Clinic) -> None:
        self.clinic = clinic
        self.accepted: list[tuple[float, str]] = []
        self.refused: list[int] = []
        self._lock = threading.Lock()

    def post(self, bodies: list[dict], threads: int = 8, per_second: float | None = None) -> None:
        """Post every body; with ``per_second``, no faster than that (an offered load, not a flood)."""
        began = time.monotonic()

        def one(numbered: tuple[int, dict]) -> None:
            n, body = numbered
            if per_second:
                time.sleep(max(0.0, began + n / per_second - time.monotonic()))
            response = self.clinic.http("POST", "/book", body, timeout=30)
            with self._lock:
                if response.status == 202:
                    self.accepted.append((time.monotonic(), response.json()["booking_id"]))
                else:
                    self.refused.append(response.status)

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, enumerate(bodies)))

    @property
    def ids(self) -> list[str]:
        return [booking_id for _, booking_id in self.accepted]


def wait_all_final(ids: list[str], timeout: float, cluster=None, namespace: str = "") -> None:
    def pending() -> int:
        return Booking.select().where(Booking.id.in_(ids), Booking.status == "pending").count()

    try:
        wait_until(lambda: pending() == 0, timeout=timeout, interval=1, what=f"{len(ids)} bookings to be decided")
    except AssertionError as error:
        held = cluster.queues(namespace, "messages", "messages_unacknowledged", "consumers") if cluster else {}
        raise AssertionError(f"{error}; {pending()} still pending; queues: {held}") from None


def assert_each_decided_once_and_no_slot_twice(ids: list[str]) -> Counter:
    bookings = list(Booking.select().where(Booking.id.in_(ids)))
    assert len(bookings) == len(ids)
    tally = Counter(b.status for b in bookings)
    assert set(tally) <= {"confirmed", "rejected"}, tally
    finals = (
        BookingEvent.select(BookingEvent.booking, peewee.fn.COUNT(BookingEvent.id).alias("n"))
        .where(BookingEvent.status != "pending", BookingEvent.booking.in_(ids))
        .group_by(BookingEvent.booking)
    )
    counts = Counter(row.n for row in finals)
    assert counts == {1: len(ids)}, f"final status changes per booking: {counts}"
    places = Counter((b.doctor_id, b.slot) for b in bookings if b.status == "confirmed")
    assert max(places.values(), default=1) == 1, "a slot was confirmed twice"
    return tally


def drained(cluster, namespace: str, *, dead_letters: dict[str, int] | None = None) -> dict[str, dict]:
    """Wait until no queue of the namespace holds a message but the expected dead letters. The
    timeout allows for dead-lettering stalled after a failover (the nodes retry after 10 s)."""
    expected = {f"{namespace}.{q}": n for q, n in (dead_letters or {}).items()}

    def settled():
        queues = cluster.queues(namespace, "messages", "type")
        held = {name: q["messages"] for name, q in queues.items() if q["messages"] != expected.get(name, 0)}
        return (not held) and queues

    return wait_until(settled, timeout=240, interval=2, what="every queue to drain")


class DecisionClock(threading.Thread):
    """Samples how many bookings of the test's database are decided, every 0.2 s."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, int]] = []
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(0.2):
            self.samples.append((time.monotonic(), Booking.select().where(Booking.status != "pending").count()))

    def decided(self, at: float) -> int:
        return max((n for t, n in self.samples if t <= at), default=0)

    def rate(self, start: float, end: float) -> float:
        return round((self.decided(end) - self.decided(start)) / (end - start), 1) if end > start else 0.0

    def longest_pause(self, start: float, end: float) -> float:
        """The longest time between ``start`` and ``end`` in which no booking was decided."""
        changes = [t for (t, n), (_, before) in zip(self.samples[1:], self.samples, strict=False) if n != before]
        edges = [start, *(t for t in changes if start <= t <= end), end]
        return round(max(b - a for a, b in zip(edges, edges[1:], strict=False)), 1)


def rate(times: list[float], start: float, end: float) -> float:
    inside = [t for t in times if start <= t < end]
    return round(len(inside) / (end - start), 1) if end > start else 0.0


def test_two_thousand_bookings_survive_the_kill_of_the_busiest_node(
    cluster, cluster_env, bookings_db, tmp_path, request
):
    clinic = start(Clinic(cluster_env, tmp_path / "clinic.log"))
    request.addfinalizer(clinic.stop)
    namespace = cluster_env["CLINIC_NAMESPACE"]
    before = cluster.queues(namespace, "type", "leader")
    assert {q["type"] for q in before.values()} == {"quorum"} and len(before) == 3 * len(STAGES)
    victim = cluster.busiest_node(namespace)
    bodies = requests(2000)
    poster = Poster(clinic)
    events: dict[str, float] = {}

    def kill_and_restart() -> None:
        wait_until(lambda: len(poster.accepted) >= len(bodies) // 3, timeout=600, interval=0.01)
        events["kill"] = time.monotonic()
        victim.kill()
        while True:  # no queue of the namespace is led by the dead node any more
            leaders = [q["leader"] for q in cluster.queues(namespace, "leader").values()]
            if victim.name not in leaders:
                events["elected"] = time.monotonic()
                break
        time.sleep(max(0.0, events["kill"] + 15 - time.monotonic()))
        events["restart"] = time.monotonic()
        victim.start()
        events["back"] = time.monotonic()

    chaos = threading.Thread(target=kill_and_restart)
    clock = DecisionClock()
    clock.start()
    chaos.start()
    events["start"] = time.monotonic()
    poster.post(bodies, per_second=OFFERED_PER_SECOND)
    events["posted"] = time.monotonic()
    chaos.join(timeout=300)
    assert not chaos.is_alive() and "back" in events

    assert poster.refused == [] and len(set(poster.ids)) == 2000
    wait_all_final(poster.ids, timeout=600, cluster=cluster, namespace=namespace)
    events["decided"] = time.monotonic()
    clock.stopped.set()
    tally = assert_each_decided_once_and_no_slot_twice(poster.ids)
    assert tally["confirmed"] == len({(b["slot"], b["doctor_id"]) for b in bodies})
    drained(cluster, namespace)

    accepted = [t for t, _ in poster.accepted]
    figures = {
        "nodes started (s)": {k: round(v, 1) for k, v in cluster.startup_seconds.items()},
        "clinic up ready (s)": round(clinic.startup_seconds, 1),
        "killed": victim.name,
        "queues it led": sum(q["leader"] == victim.name for q in before.values()),
        "no queue led by it any more after (s, rabbitmqctl polling)": round(events["elected"] - events["kill"], 2),
        "node back after restart (s)": round(events["back"] - events["restart"], 1),
        "accepted/s before / during / after": [
            rate(accepted, events["start"], events["kill"]),
            rate(accepted, events["kill"], events["back"]),
            rate(accepted, events["back"], events["posted"]),
        ],
        "decided/s before / during / after": [
            clock.rate(events["start"], events["kill"]),
            clock.rate(events["kill"], events["back"]),
            clock.rate(events["back"], events["decided"]),
        ],
        "longest pause in decisions after the kill (s)": clock.longest_pause(events["kill"], events["back"]),
        "tally": dict(tally),
        "all decided after the last post (s)": round(events["decided"] - events["posted"], 1),
    }
    print(f"\nCLUSTER FIGURES kill: {figures}")


def test_a_booking_that_kills_its_worker_every_time_ends_in_the_process_xq(cluster, cluster_env, bookings_db, tmp_path):
    env = {
        **cluster_env,
        "CLINIC_TEST_POISON_PATIENT": "Poison Pill",
        "CLINIC_DELIVERY_LIMIT": "3",
        # One message in hand per process: a worker's death returns its other prefetched messages
        # too, raising their delivery count toward the same limit (see the README's Reliability).
        "CLINIC_WORKER_THREADS": "1",
        "dramatiq_queue_prefetch": "1",
        "CLINIC_SWEEP_AFTER": "600",  # the sweeper would re-send the pending poison; not within this test
    }
    clinic = start(Clinic(env, tmp_path / "clinic.log", module="tests.cluster.poisoned_up"))
    namespace = env["CLINIC_NAMESPACE"]
    try:
        started = time.monotonic()
        poison = clinic.book("Poison Pill", slot(9, weekday=2)).json()["booking_id"]
        poster = Poster(clinic)
        poster.post(requests(100), threads=4)

        wait_all_final(poster.ids, timeout=180, cluster=cluster, namespace=namespace)
        assert_each_decided_once_and_no_slot_twice(poster.ids)
        queues = drained(cluster, namespace, dead_letters={"process.XQ": 1})
        elapsed = time.monotonic() - started
        dead = DeadLetters(Settings.from_env(env)).list("process")
        assert [letter.booking_id for letter in dead] == [poison]
        assert Booking.get_by_id(poison).status == "pending"
        deaths = clinic.log_text().count(f"poison: booking {poison} kills")
    finally:
        clinic.stop()
    assert queues[f"{namespace}.process.XQ"]["messages"] == 1
    assert deaths >= 3  # CLINIC_DELIVERY_LIMIT: RabbitMQ gave up on it after that many returns
    print(f"\nCLUSTER FIGURES poison: worker processes it killed {deaths}, all done in {elapsed:.1f}s")


def test_a_rolling_restart_of_every_node_loses_nothing(cluster, cluster_env, bookings_db, tmp_path, request):
    clinic = start(Clinic(cluster_env, tmp_path / "clinic.log"))
    request.addfinalizer(clinic.stop)
    namespace = cluster_env["CLINIC_NAMESPACE"]
    poster = Poster(clinic)
    bodies = map(booking_request, itertools.count())  # as many as the upgrade takes
    upgraded = threading.Event()
    failed: list[BaseException] = []

    def post_until_upgraded() -> None:
        try:
            while not upgraded.is_set():
                poster.post([next(bodies) for _ in range(40)], threads=4)
        except BaseException as error:  # the test fails on it, not only a warning
            failed.append(error)

    posting = threading.Thread(target=post_until_upgraded)
    started = time.monotonic()
    posting.start()
    restarts = []
    try:
        for node in cluster.nodes:  # an upgrade: each node stopped cleanly and started again, in turn
            began = time.monotonic()
            node.stop()
            node.start()
            restarts.append(round(time.monotonic() - began, 1))
    finally:
        upgraded.set()
        posting.join(timeout=600)
    assert failed == [] and not posting.is_alive()
    assert poster.refused == [] and len(set(poster.ids)) == len(poster.ids) > 0
    wait_all_final(poster.ids, timeout=600)
    tally = assert_each_decided_once_and_no_slot_twice(poster.ids)
    drained(cluster, namespace)
    clinic.stop()
    print(
        f"\nCLUSTER FIGURES rolling: node restarts (s) {restarts}, {len(poster.ids)} bookings {dict(tally)} "
        f"in {time.monotonic() - started:.1f}s"
    )
