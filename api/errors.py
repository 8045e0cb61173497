"""Domain errors mapped to HTTP once, and every error body written as JSON."""

from __future__ import annotations

import json
import logging
import traceback

import falcon

from clinic.errors import (
    BookingNotFound,
    BrokerUnavailable,
    DeadLetterNotFound,
    IdempotencyConflict,
    IdempotencyKeyReused,
    InvalidField,
    InvalidHeader,
    NotAuthenticated,
)

logger = logging.getLogger(__name__)


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Every error is JSON, whatever the client's Accept header says."""
    resp.data = json.dumps(error.to_dict()).encode("utf-8")
    resp.content_type = falcon.MEDIA_JSON
    resp.append_header("Vary", "Accept")


class FieldError(falcon.HTTPError):
    """A 4xx whose body names the offending field: ``{"title", "description", "field"}``."""

    def __init__(self, status: str, title: str, field: str, problem: str) -> None:
        super().__init__(status, title=title, description=f"{field} {problem}")
        self.field = field

    def to_dict(self, obj_type=dict):
        body = super().to_dict(obj_type)
        body["field"] = self.field
        return body


class InvalidFieldError(FieldError):
    """422: a field is missing, of the wrong type or breaks a booking rule."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(falcon.HTTP_422, "Invalid field", field, problem)


def body_too_large(limit: int) -> falcon.HTTPContentTooLarge:
    """The 413 for a body over ``limit`` bytes, whether its Content-Length or its reading says so."""
    return falcon.HTTPContentTooLarge(
        title="Request body too large", description=f"the body must be at most {limit} bytes"
    )


class BadBody(FieldError):
    """400 for a body that is not JSON the API can read; ``field`` is ``body``."""

    def __init__(self, problem: str) -> None:
        super().__init__(falcon.HTTP_400, "Invalid body", "body", problem)


class InvalidHeaderError(falcon.HTTPError):
    """A 4xx whose body names the offending request header: ``{"title", "description", "header"}``."""

    def __init__(self, status: str, title: str, header: str, description: str, **kwargs) -> None:
        super().__init__(status, title=title, description=description, **kwargs)
        self.header = header

    def to_dict(self, obj_type=dict):
        body = super().to_dict(obj_type)
        body["header"] = self.header
        return body


def invalid_field(req, resp, error: InvalidField, params) -> None:
    raise InvalidFieldError(error.field, error.problem)


def invalid_header(req, resp, error: InvalidHeader, params) -> None:
    raise InvalidHeaderError(falcon.HTTP_400, "Invalid header", error.header, f"{error.header} {error.problem}")


def not_authenticated(req, resp, error: NotAuthenticated, params) -> None:
    challenge = 'Bearer realm="clinic"'
    if req.get_header("Authorization"):
        challenge += ', error="invalid_token"'
    raise falcon.HTTPUnauthorized(title="Unauthorized", description=error.problem, challenges=[challenge])


def idempotency_key_reused(req, resp, error: IdempotencyKeyReused, params) -> None:
    raise InvalidHeaderError(
        falcon.HTTP_422,
        "Idempotency key reused",
        "Idempotency-Key",
        "Idempotency-Key was already used with a different request body",
    )


def idempotency_conflict(req, resp, error: IdempotencyConflict, params) -> None:
    raise InvalidHeaderError(
        falcon.HTTP_409,
        "Request in progress",
        "Idempotency-Key",
        "a request with this Idempotency-Key is being handled; ask again",
        headers={"Retry-After": "1"},
    )


def dead_letter_not_found(req, resp, error: DeadLetterNotFound, params) -> None:
    raise falcon.HTTPNotFound(title="Not found", description="no dead letter has that message id")


def broker_unavailable(req, resp, error: BrokerUnavailable, params) -> None:
    raise falcon.HTTPServiceUnavailable(
        title="Broker unavailable", description="RabbitMQ does not answer", retry_after=5
    )


def booking_not_found(req, resp, error: BookingNotFound, params) -> None:
    raise falcon.HTTPNotFound(title="Not found", description="no such booking")


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
    raise falcon.HTTPInternalServerError(title="Internal error", description="the request could not be completed")


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
    app.set_error_serializer(serialize_error)
