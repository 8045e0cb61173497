"""The webhooks' actors, on their own queue ``{ns}.webhooks``: ``deliver_webhook`` sends one
delivery (``clinic.webhooks.attempt``), and after its last retry ``webhook_retries_exhausted``
records it failed (the message itself is then in ``{ns}.webhooks.XQ``, like every dead letter)."""

from __future__ import annotations

import dramatiq

from clinic import webhooks
from clinic.config import WEBHOOKS, Settings, actor_name
from clinic.errors import DeliveryRetry
from clinic.lifecycle import MAX_RETRIES
from clinic.secretbox import SecretBox

EXHAUSTED = "webhook_retries_exhausted"


def declare(broker: dramatiq.Broker, settings: Settings, *, box: SecretBox) -> dict[str, dramatiq.Actor]:
    """Declare the webhooks' actors on ``broker``; return them by actor name."""

    def deliver_webhook(delivery_id: int) -> None:
        try:
            webhooks.attempt(settings, box, delivery_id)
        except DeliveryRetry as retry:
            # Expected now and then: Retries schedules the next attempt at the delay the answer asked for.
            raise dramatiq.Retry(str(retry), delay=retry.delay_ms) from retry

    def webhook_retries_exhausted(message: dict, retries: dict) -> None:
        webhooks.give_up(message["args"][0])

    queue = settings.queue(WEBHOOKS)
    declared = [
        dramatiq.actor(
            deliver_webhook,
            actor_name=actor_name(WEBHOOKS),
            queue_name=queue,
            broker=broker,
            max_retries=MAX_RETRIES,
            min_backoff=settings.webhook_min_backoff_ms,
            max_backoff=settings.webhook_max_backoff_ms,
            on_retry_exhausted=EXHAUSTED,
        ),
        dramatiq.actor(webhook_retries_exhausted, actor_name=EXHAUSTED, queue_name=queue, broker=broker),
    ]
    return {declared_actor.actor_name: declared_actor for declared_actor in declared}
