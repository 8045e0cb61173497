"""The pipeline's four actors on RabbitMQ; ``dramatiq actors --queues NS.STAGE`` runs them."""

from actors.confirm import confirm_booking  # noqa: E402
from actors.notify import notify_booking  # noqa: E402
from actors.process import process_booking  # noqa: E402
from actors.reject import reject_booking, reject_unanswered_booking  # noqa: E402
from actors.runtime import broker, settings  # noqa: F401  (first: binds the broker)

__all__ = [
    "broker",
    "confirm_booking",
    "notify_booking",
    "process_booking",
    "reject_booking",
    "reject_unanswered_booking",
    "settings",
]
