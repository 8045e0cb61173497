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
from clinic import keys, lifecycle, store
from clinic.broker import parameters
from clinic.broker.deadletters import DeadLetters
from clinic.broker.dispatch import Dispatcher, rabbitmq_broker
from clinic.config import Settings

logger = logging.getLogger("api")


class DatabaseSession:
    """A database connection for each request, given back afterwards (``store.open_session``)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        store.open_session()

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        store.close_session()


def database_check() -> None:
    store.database.execute_sql("SELECT 1")


def broker_check(url: str) -> Callable[[], None]:
    def check() -> None:
        pika.BlockingConnection(parameters(url, timeout=2)).close()

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
    """The API process's composition root: settings from the environment, the database, and a
    broker that only sends (the API needs none of the workers' setup)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    settings = Settings.from_env()
    broker = rabbitmq_broker(settings)
    dispatcher = Dispatcher(settings, broker)
    store.connect(settings.database_url)
    store.create_schema()
    with store.database.connection_context():
        closed = keys.client_keys_exist()
    if not closed:
        logger.warning(
            "No client API key exists: POST /book and GET /booking/{id} are open to anyone. "
            "Create one with 'clinic keys create --scope client --name NAME' before exposing this API."
        )
    return create_app(
        settings,
        dispatch=lambda booking_id: dispatcher.send(lifecycle.accepted(booking_id)),
        dead_letters=DeadLetters(settings, broker=broker),
    )
