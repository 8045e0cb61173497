"""Domain errors mapped to HTTP once, and every error body written as JSON."""

from __future__ import annotations

import json
import logging
import traceback

import falcon

from clinic.errors import BookingNotFound, InvalidField

logger = logging.getLogger(__name__)


def serialize_error(req: falcon.Request, resp: falcon.Response, error: falcon.HTTPError) -> None:
    """Every error is JSON, whatever the client's Accept header says."""
    resp.data = json.dumps(error.to_dict()).encode("utf-8")
    resp.content_type = falcon.MEDIA_JSON
    resp.append_header("Vary", "Accept")


class InvalidFieldError(falcon.HTTPUnprocessableEntity):
    """422 whose body names the offending field: ``{"title", "description", "field"}``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(title="Invalid field", description=f"{field} {problem}")
        self.field = field

    def to_dict(self, obj_type=dict):
        body = super().to_dict(obj_type)
        body["field"] = self.field
        return body


def invalid_field(req, resp, error: InvalidField, params) -> None:
    raise InvalidFieldError(error.field, error.problem)


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
    app.set_error_serializer(serialize_error)
