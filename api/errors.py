"""Domain errors mapped to HTTP once, and every error written by one serializer as an RFC 9457
problem detail (``application/problem+json``: ``type``, ``title``, ``status``, ``detail``, and
``field`` or ``header`` when one of them is at fault)."""

from __future__ import annotations

import logging
import traceback
from http import HTTPStatus

import falcon
import msgspec

from api.bodies import Problem
from clinic.errors import (
    BookingNotFound,
    BrokerUnavailable,
    DeadLetterNotFound,
    IdempotencyConflict,
    IdempotencyKeyReused,
    InvalidField,
    InvalidHeader,
    NotAuthenticated,
    RescheduleInFlight,
    TransitionRefused,
    WebhookNotFound,
)

logger = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
#: Problem types of this API; a status that says it all is ``about:blank``.
TYPE_PREFIX = "urn:clinic:problem:"
_encoder = msgspec.json.Encoder()


def phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_body(
    status: int,
    detail: str,
    *,
    kind: str | None = None,
    title: str | None = None,
    field: str | None = None,
    header: str | None = None,
    booking_id: str | None = None,
) -> bytes:
    """The encoded problem; ``kind`` names one of our problem types, else the type is about:blank
    and the title is the status's phrase (as RFC 9457 asks)."""
    body = Problem(
        type=TYPE_PREFIX + kind if kind else "about:blank",
        title=(title or phrase(status)) if kind else phrase(status),
        status=status,
        detail=detail,
        field=msgspec.UNSET if field is None else field,
        header=msgspec.UNSET if header is None else header,
        booking_id=msgspec.UNSET if booking_id is None else booking_id,
    )
    return _encoder.encode(body)


class ProblemError(falcon.HTTPError):
    """An HTTP error with a problem type of ours and, where one is at fault, a field or a header."""

    def __init__(
        self,
        status: str,
        detail: str,
        *,
        kind: str | None = None,
        title: str | None = None,
        field: str | None = None,
        header: str | None = None,
        headers: dict[str, str] | None = None,
        booking_id: str | None = None,
    ) -> None:
        super().__init__(status, title=title, description=detail, headers=headers)
        self.kind, self.field, self.header, self.booking_id = kind, field, header, booking_id


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Every error, ours or Falcon's (404, 405, 415...), is a problem, whatever the Accept header says."""
    status = error.status_code
    if isinstance(error, ProblemError):
        resp.data = problem_body(
            status,
            error.description,
            kind=error.kind,
            title=error.title,
            field=error.field,
            header=error.header,
            booking_id=error.booking_id,
        )
    else:
        resp.data = problem_body(status, error.description or _DEFAULT_DETAIL.get(status, phrase(status)))
    resp.content_type = PROBLEM_JSON
    resp.append_header("Vary", "Accept")


_DEFAULT_DETAIL = {
    404: "nothing is at this path",
    405: "this path does not answer that method (see Allow)",
}


class InvalidFieldError(ProblemError):
    """422: a field is missing, of the wrong type or breaks a booking rule."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(
            falcon.HTTP_422, f"{field} {problem}", kind="invalid-field", title="Invalid field", field=field
        )


class BadBody(ProblemError):
    """400 for a body that is not JSON the API can read; ``field`` is ``body``."""

    def __init__(self, problem: str) -> None:
        super().__init__(falcon.HTTP_400, f"body {problem}", kind="invalid-body", title="Invalid body", field="body")


def body_too_large(limit: int) -> ProblemError:
    """The 413 for a body over ``limit`` bytes, whether its Content-Length or its reading says so."""
    return ProblemError(falcon.HTTP_413, f"the body must be at most {limit} bytes")


def invalid_field(req, resp, error: InvalidField, params) -> None:
    raise InvalidFieldError(error.field, error.problem)


def invalid_header(req, resp, error: InvalidHeader, params) -> None:
    detail = f"{error.header} {error.problem}"
    raise ProblemError(falcon.HTTP_400, detail, kind="invalid-header", title="Invalid header", header=error.header)


def not_authenticated(req, resp, error: NotAuthenticated, params) -> None:
    challenge = 'Bearer realm="clinic"'
    if req.get_header("Authorization"):
        challenge += ', error="invalid_token"'
    raise ProblemError(falcon.HTTP_401, error.problem, headers={"WWW-Authenticate": challenge})


def idempotency_key_reused(req, resp, error: IdempotencyKeyReused, params) -> None:
    raise ProblemError(
        falcon.HTTP_422,
        "Idempotency-Key was already used with a different request body",
        kind="idempotency-key-reused",
        title="Idempotency key reused",
        header="Idempotency-Key",
    )


def idempotency_conflict(req, resp, error: IdempotencyConflict, params) -> None:
    raise ProblemError(
        falcon.HTTP_409,
        "a request with this Idempotency-Key is being handled; ask again",
        kind="request-in-progress",
        title="Request in progress",
        header="Idempotency-Key",
        headers={"Retry-After": "1"},
    )


def dead_letter_not_found(req, resp, error: DeadLetterNotFound, params) -> None:
    raise ProblemError(falcon.HTTP_404, "no dead letter has that message id")


def broker_unavailable(req, resp, error: BrokerUnavailable, params) -> None:
    raise ProblemError(falcon.HTTP_503, "RabbitMQ does not answer; ask again later", headers={"Retry-After": "5"})


def booking_not_found(req, resp, error: BookingNotFound, params) -> None:
    raise ProblemError(falcon.HTTP_404, "no such booking")


def webhook_not_found(req, resp, error: WebhookNotFound, params) -> None:
    raise ProblemError(falcon.HTTP_404, "no such webhook endpoint or delivery")


def transition_refused(req, resp, error: TransitionRefused, params) -> None:
    raise ProblemError(
        falcon.HTTP_409,
        f"the booking is {error.status}: {error.problem}",
        kind="invalid-transition",
        title="Not possible in this status",
    )


def reschedule_in_flight(req, resp, error: RescheduleInFlight, params) -> None:
    raise ProblemError(
        falcon.HTTP_409,
        f"booking {error.pending_id} is already moving this booking; wait for it to be decided, or cancel it",
        kind="reschedule-in-flight",
        title="A reschedule is in flight",
        booking_id=error.pending_id,
        headers={"Location": f"/booking/{error.pending_id}"} if error.pending_id else None,
    )


def unexpected(req, resp, error: Exception, params) -> None:
    """The last resort: log the failure (types and ids only) and answer a bare 500."""
    if isinstance(error, falcon.HTTPError):
        raise error
    # The message and the frames' locals may hold a patient's name: log where it failed, not what.
    frames = traceback.extract_tb(error.__traceback__)
    where = " <- ".join(
        f"{frame.name}@{frame.filename.rsplit('/', 1)[-1]}:{frame.lineno}" for frame in frames[::-1][:6]
    )
    logger.error("Unhandled %s in %s %s at %s", type(error).__name__, req.method, req.uri_template, where)
    raise ProblemError(falcon.HTTP_500, "the request could not be completed")


def install(app: falcon.App) -> None:
    app.add_error_handler(Exception, unexpected)
    app.add_error_handler(InvalidField, invalid_field)
    app.add_error_handler(BookingNotFound, booking_not_found)
    app.add_error_handler(InvalidHeader, invalid_header)
    app.add_error_handler(NotAuthenticated, not_authenticated)
    app.add_error_handler(IdempotencyKeyReused, idempotency_key_reused)
    app.add_error_handler(IdempotencyConflict, idempotency_conflict)
    app.add_error_handler(DeadLetterNotFound, dead_letter_not_found)
    app.add_error_handler(BrokerUnavailable, broker_unavailable)
    app.add_error_handler(TransitionRefused, transition_refused)
    app.add_error_handler(WebhookNotFound, webhook_not_found)
    app.add_error_handler(RescheduleInFlight, reschedule_in_flight)
    app.set_error_serializer(serialize_error)
