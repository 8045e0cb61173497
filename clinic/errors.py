"""The domain's exceptions. None of them carries a patient's name: they end up in logs."""


class ClinicError(Exception):
    """Base of every error the booking rules raise on purpose."""


def qualified_name(kind: type[BaseException]) -> str:
    """``module.Class``: how a failure's class is recorded on a message and shown for a dead letter."""
    return f"{kind.__module__}.{kind.__qualname__}"


class ConfigError(ClinicError):
    """A ``CLINIC_*`` variable has a value the clinic cannot run with."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable} {problem}")
        self.variable = variable
        self.problem = problem


class InvalidField(ClinicError):
    """A request names a field whose value breaks a booking rule (answered as 422)."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class BookingNotFound(ClinicError):
    """No booking has that id (or the caller may not see it)."""


class TransitionRefused(ClinicError):
    """The booking's status does not allow what was asked (answered as 409)."""

    def __init__(self, booking_id: str, status: str, problem: str) -> None:
        super().__init__(f"booking {booking_id} is {status}: {problem}")
        self.booking_id = booking_id
        self.status = status
        self.problem = problem


class RescheduleInFlight(ClinicError):
    """The booking already has a pending reschedule, ``pending_id`` (answered as 409)."""

    def __init__(self, booking_id: str, pending_id: str | None) -> None:
        super().__init__(f"booking {booking_id} already has a reschedule in flight: {pending_id}")
        self.booking_id = booking_id
        self.pending_id = pending_id


class TransientFailure(ClinicError):
    """A step failed this time for a reason that may pass: the pipeline retries it with backoff."""


class DoctorUnavailable(TransientFailure):
    """The doctor-availability system did not answer this time; asking again may succeed."""


class InvalidHeader(ClinicError):
    """A request header has a value the clinic cannot use (answered as 400, naming the header)."""

    def __init__(self, header: str, problem: str) -> None:
        super().__init__(f"{header}: {problem}")
        self.header = header
        self.problem = problem


class NotAuthenticated(ClinicError):
    """No API key, or one that is malformed, unknown, revoked or of the wrong scope (401)."""

    def __init__(self, problem: str, *, scope: str | None = None) -> None:
        super().__init__(problem)
        self.problem = problem
        self.scope = scope


class ApiKeyNotFound(ClinicError):
    """No API key has that id."""


class IdempotencyKeyReused(ClinicError):
    """The ``Idempotency-Key`` was already used with a different request body (422)."""


class IdempotencyConflict(ClinicError):
    """A request with the same ``Idempotency-Key`` is being handled right now (409)."""


class DeadLetterNotFound(ClinicError):
    """No dead letter has that message id (in the queues looked at)."""


class BrokerUnavailable(ClinicError):
    """RabbitMQ did not answer (503); asking again later may succeed."""


class WebhookNotFound(ClinicError):
    """No webhook endpoint (or delivery) has that id for this key (404)."""


class DeliveryRetry(TransientFailure):
    """A webhook attempt answered 429 or 5xx, or the network failed: try again after ``delay_ms``."""

    def __init__(self, response: str, delay_ms: int) -> None:
        super().__init__(f"webhook attempt failed ({response}); retrying in {delay_ms} ms")
        self.response = response
        self.delay_ms = delay_ms
