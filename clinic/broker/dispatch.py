"""Sending a pipeline step to its stage's actor, by name, without importing the actors."""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
from dramatiq import Message
from dramatiq.brokers.rabbitmq import RabbitmqBroker

from clinic.config import Settings, actor_name
from clinic.lifecycle import Step


def rabbitmq_broker(settings: Settings, middleware: Sequence[dramatiq.Middleware] = ()) -> RabbitmqBroker:
    """Dramatiq's RabbitMQ broker with publisher confirms: ``send`` returns once RabbitMQ has the
    message. It connects lazily, on the first send or consume of each thread."""
    return RabbitmqBroker(url=settings.broker_url, confirm_delivery=True, middleware=list(middleware))


class Dispatcher:
    """Sends each :class:`Step` as a Dramatiq message to ``{namespace}.{stage}``.

    The API and the sweeper send through this without declaring any actor (a process that only
    sends needs none of the workers' setup); the workers route their steps through it too."""

    def __init__(self, settings: Settings, broker: dramatiq.Broker) -> None:
        self.settings = settings
        self.broker = broker

    def send(self, step: Step) -> Message | None:
        """Enqueue the step's message (confirmed by RabbitMQ); nothing for a stop."""
        if step.stage is None:
            return None
        message = Message(
            queue_name=self.settings.queue(step.stage),
            actor_name=actor_name(step.stage),
            args=tuple(step.args),
            kwargs={},
            options={},
        )
        return self.broker.enqueue(message)
