"""The workers declare their queues on the real RabbitMQ the way Dramatiq means them to be."""

from __future__ import annotations

import subprocess
import sys
import threading

import pika
from dramatiq import Message

from clinic.broker.dispatch import ClinicBroker
from tests.support import REPO, queue_stats, wait_until

STAGES = ("process", "confirm", "reject", "notify")
WEEK_MS = 7 * 24 * 3600 * 1000


def queues(namespace: str) -> dict[str, dict]:
    found = {}
    for name, queue in queue_stats("durable", "arguments").items():
        if name.startswith(f"{namespace}."):
            arguments = {key: value for key, _type, value in queue["arguments"]}
            found[name] = {"durable": queue["durable"], "arguments": arguments}
    return found


def test_the_four_queues_and_their_dead_letter_queues_exist_with_dramatiqs_arguments(clinic_env, namespace):
    worker = subprocess.Popen(
        [sys.executable, "-m", "clinic", "worker", *STAGES],
        env=clinic_env,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        declared = wait_until(lambda: len(q := queues(namespace)) == 12 and q, timeout=30, what="12 queues")
    finally:
        worker.terminate()
        worker.wait(30)
    for stage in STAGES:
        queue, delayed, dead = (f"{namespace}.{stage}{suffix}" for suffix in ("", ".DQ", ".XQ"))
        for name in (queue, delayed):
            assert declared[name]["durable"] is True
            assert declared[name]["arguments"] == {
                "x-dead-letter-exchange": "",
                "x-dead-letter-routing-key": dead,
            }
        assert declared[dead] == {"durable": True, "arguments": {"x-message-ttl": WEEK_MS}}


def test_acks_waiting_together_wake_the_consumer_once_and_each_reaches_rabbitmq(rabbitmq, namespace):
    broker = ClinicBroker(url=rabbitmq)
    queue = f"{namespace}.process"
    broker.declare_queue(queue, ensure=True)
    for number in range(5):
        broker.enqueue(Message(queue_name=queue, actor_name="process_booking", args=(number,), kwargs={}, options={}))
    consumer = broker.consume(queue, prefetch=10, timeout=100)
    received = []
    while len(received) < 5:
        message = next(consumer)
        if message is not None:
            received.append(message)
    assert queue_stats("messages_unacknowledged")[queue]["messages_unacknowledged"] == 5
    wakeups = []
    wake = consumer.connection.add_callback_threadsafe
    consumer.connection.add_callback_threadsafe = lambda callback: (wakeups.append(callback), wake(callback))
    # Dramatiq's worker threads ack from their own threads while the consumer's thread is away.
    acking = [threading.Thread(target=consumer.ack, args=(message,)) for message in received]
    for thread in acking:
        thread.start()
    for thread in acking:
        thread.join()
    assert len(wakeups) == 1  # Dramatiq's own consumer asks for five

    def acked() -> bool:
        assert next(consumer) is None  # the consumer's loop: its next poll sends what is written
        return queue_stats("messages_unacknowledged")[queue]["messages_unacknowledged"] == 0

    try:
        wait_until(acked, timeout=10, what="RabbitMQ to have the five acks")
    finally:
        consumer.close()
        broker.close()
    connection = pika.BlockingConnection(pika.URLParameters(rabbitmq))
    try:
        assert connection.channel().queue_declare(queue, passive=True).method.message_count == 0
    finally:
        connection.close()
