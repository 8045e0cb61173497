"""The Falcon application: ``create_app`` for tests, ``get_app`` for waitress."""

from __future__ import annotations

import logging
from collections.abc import Callable

import falcon
import pika

from api import errors, media
from api.admin import DeadLetterCollection, DeadLetterReplay
from api.auth import Authentication
from api.openapi import openapi_document
from api.resources import BookingCollection, BookingItem, DoctorCollection, Health, OpenAPIDocument
from clinic import keys, store
from clinic.config import Settings
from clinic.deadletters import DeadLetters

logger = logging.getLogger("api")


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
    dead_letters: DeadLetters | None = None,
    client_keys_exist: Callable[[], bool] | None = None,
) -> falcon.App:
    """Build the API around a dispatcher that hands a booking id to the processor.

    ``client_keys_exist`` decides whether the booking endpoints need a client key; by default
    the database is asked at most every few seconds (``keys.ClientKeysExist``)."""
    authentication = Authentication(client_keys_exist or keys.ClientKeysExist())
    app = falcon.App(middleware=[DatabaseSession(), authentication])
    errors.install(app)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.media_handlers = media.handlers()
    dead_letters = dead_letters or DeadLetters(settings)
    if checks is None:
        checks = {"database": database_check, "broker": broker_check(settings.broker_url)}
    app.add_route("/book", BookingCollection(settings, dispatch))
    app.add_route("/booking/{booking_id}", BookingItem(settings))
    app.add_route("/doctors", DoctorCollection(settings))
    app.add_route("/health", Health(checks))
    app.add_route("/openapi.json", OpenAPIDocument(openapi_document(settings)))
    app.add_route("/admin/dead-letters", DeadLetterCollection(dead_letters))
    app.add_route("/admin/dead-letters/replay", DeadLetterReplay(dead_letters))
    return app


def get_app() -> falcon.App:
    """The production app: settings from the environment, bookings sent to the real processor."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from actors import process_booking, settings  # binds the broker before anything is sent

    store.connect(settings.database_url)
    store.create_schema()
    with store.database.connection_context():
        closed = keys.client_keys_exist()
    if not closed:
        logger.warning(
            "No client API key exists: POST /book and GET /booking/{id} are open to anyone. "
            "Create one with 'clinic keys create --scope client --name NAME' before exposing this API."
        )
    return create_app(settings, dispatch=process_booking.send)
