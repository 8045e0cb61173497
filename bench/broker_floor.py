"""The broker floor: plain pika moving N messages through four durable queues, one consumer
process per hop, each hop a manual-ack consume plus a persistent publish with confirm. The queues
are of the run's type (``--queue-type``): a quorum pipeline is set against quorum queues.

``producer -> q1 -> hop -> q2 -> hop -> q3 -> hop -> q4 -> hop -> exchange -> subscriber``:
the same shape as ``POST /book -> process -> confirm -> notify -> {ns}.notifications``, with one
hop more, and none of the pipeline's work between consume and publish.
Children run as ``python -m bench.broker_floor produce|hop ...``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pika

from bench import REPO
from bench.arrivals import Arrivals
from bench.cpu import CpuMeter, pids_named
from bench.stats import rate

HOPS = 4
#: What Dramatiq itself prefetches for a worker of 8 threads (2 per thread).
PREFETCH = 16
KEY = "done"


def rabbitmq() -> list[int]:
    return pids_named("beam.smp")


def queue_names(namespace: str) -> list[str]:
    return [f"{namespace}.floor{n}" for n in range(1, HOPS + 1)]


def exchange_name(namespace: str) -> str:
    return f"{namespace}.floor-out"


def queue_arguments(queue_type: str) -> dict:
    """What the floor's queues are declared with: nothing for classic queues, the type for quorum."""
    return {"x-queue-type": "quorum"} if queue_type == "quorum" else {}


def persistent() -> pika.BasicProperties:
    return pika.BasicProperties(content_type="application/json", delivery_mode=pika.DeliveryMode.Persistent)


def produce(url: str, queue: str, count: int) -> None:
    """Publish ``count`` persistent messages to ``queue``, each confirmed before the next."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    properties = persistent()
    for number in range(count):
        body = json.dumps({"booking_id": str(number), "sent": time.monotonic()})
        channel.basic_publish(exchange="", routing_key=queue, body=body, properties=properties)
    connection.close()


def hop(url: str, source: str, exchange: str, routing_key: str, count: int, timeout: float) -> None:
    """Move ``count`` messages from ``source`` on: consume, publish with confirm, then ack."""
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_qos(prefetch_count=PREFETCH)
    properties = persistent()
    print("ready", flush=True)
    deadline, moved = time.monotonic() + timeout, 0
    for method, _, body in channel.consume(source, inactivity_timeout=0.5):
        if method is None:
            if time.monotonic() > deadline:
                break
            continue
        channel.basic_publish(exchange=exchange, routing_key=routing_key, body=body, properties=properties)
        channel.basic_ack(method.delivery_tag)
        moved += 1
        if moved >= count:
            break
    channel.cancel()
    connection.close()


def measure(
    url: str, namespace: str, count: int, *, timeout: float, queue_type: str = "classic", label: str = "broker floor"
) -> dict:
    """Run the floor once in ``namespace`` over queues of ``queue_type`` and return its rate; the
    queues are deleted afterwards."""
    queues, exchange = queue_names(namespace), exchange_name(namespace)
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    for queue in queues:
        channel.queue_declare(queue, durable=True, arguments=queue_arguments(queue_type))
    children: list[subprocess.Popen] = []
    try:
        with Arrivals(url, exchange, [KEY]) as arrivals:
            targets = [("", queue) for queue in queues[1:]] + [(exchange, KEY)]
            for source, (target_exchange, key) in zip(queues, targets, strict=True):
                argv = ["hop", url, source, target_exchange, key, str(count), str(timeout)]
                children.append(_child(argv))
            for child in children:
                child.stdout.readline()  # "ready": connected and about to consume
            # Metered from here: the hops' start-up is not the broker's cost (the producer's still is).
            meter = CpuMeter({"pika clients": lambda: [child.pid for child in children], "rabbitmq": rabbitmq})
            with meter:
                started = time.monotonic()
                children.append(_child(["produce", url, queues[0], str(count)], pipe=False))
                missing = arrivals.wait_for([str(n) for n in range(count)], timeout=timeout, label=label)
            last = max(arrivals.first.values(), default=started)
            arrived = count - missing
    finally:
        for child in children:
            try:
                child.wait(timeout=10)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        for queue in queues:
            channel.queue_delete(queue)
        channel.exchange_delete(exchange)
        connection.close()
    return {
        "messages": count,
        "arrived": arrived,
        "hops": HOPS,
        "queue_type": queue_type,
        "elapsed_s": round(last - started, 3),
        "rate": rate(arrived, last - started),
        "prefetch": PREFETCH,
        "cpu": meter.result(arrived),
    }


def _child(argv: list[str], *, pipe: bool = True) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench.broker_floor", *argv],
        stdout=subprocess.PIPE if pipe else subprocess.DEVNULL,
        text=True,
        cwd=REPO,
    )


def main(argv: list[str]) -> int:
    role, url, *rest = argv
    if role == "produce":
        produce(url, rest[0], int(rest[1]))
    else:
        source, exchange, key, count, timeout = rest
        hop(url, source, exchange, key, int(count), float(timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
