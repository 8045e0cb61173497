"""The Falcon application: ``create_app`` for tests, ``get_app`` for waitress."""

from __future__ import annotations

import logging
from collections.abc import Callable

import falcon
import pika

from api import errors
from api.openapi import openapi_document
from api.resources import BookingCollection, BookingItem, DoctorCollection, Health, OpenAPIDocument
from clinic import store
from clinic.config import Settings


class DatabaseSession:
    """Peewee's per-request connection recipe: open before the responder, close after."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        store.database.connect(reuse_if_open=True)

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        if not store.database.is_closed():
            store.database.close()


def database_check() -> None:
    store.database.execute_sql("SELECT 1")


def broker_check(url: str) -> Callable[[], None]:
    def check() -> None:
        parameters = pika.URLParameters(url)
        parameters.connection_attempts = 1
        parameters.socket_timeout = 2
        parameters.blocked_connection_timeout = 2
        pika.BlockingConnection(parameters).close()

    return check


def create_app(
    settings: Settings,
    *,
    dispatch: Callable[[str], None],
    checks: dict[str, Callable[[], None]] | None = None,
) -> falcon.App:
    """Build the API around a dispatcher that hands a booking id to the processor."""
    app = falcon.App(middleware=[DatabaseSession()])
    errors.install(app)
    app.req_options.strip_url_path_trailing_slash = True
    if checks is None:
        checks = {"database": database_check, "broker": broker_check(settings.broker_url)}
    app.add_route("/book", BookingCollection(settings, dispatch))
    app.add_route("/booking/{booking_id}", BookingItem(settings))
    app.add_route("/doctors", DoctorCollection(settings))
    app.add_route("/health", Health(checks))
    app.add_route("/openapi.json", OpenAPIDocument(openapi_document(settings)))
    return app


def get_app() -> falcon.App:
    """The production app: settings from the environment, bookings sent to the real processor."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from actors import process_booking, settings  # binds the broker before anything is sent

    store.connect(settings.database_url)
    store.create_schema()
    return create_app(settings, dispatch=process_booking.send)
