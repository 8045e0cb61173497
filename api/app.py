"""The Falcon application: ``create_app`` for tests, ``get_app`` for waitress."""

from __future__ import annotations

import atexit
import logging
import time
from collections.abc import Callable

import falcon
import pika
from prometheus_client import CollectorRegistry

from api import desk, errors, fhir, media
from api.admin import DeadLetterCollection, DeadLetterReplay, PipelineState
from api.auth import Authentication
from api.context import RequestContext
from api.contract import BodyLimit, BodyValidation
from api.metrics import Metrics, RequestMetrics, metrics_registry, serve_metrics_port
from api.openapi import example_slots
from api.ratelimit import RateLimiter, TokenBuckets
from api.resources import (
    BookingCancel,
    BookingCollection,
    BookingItem,
    BookingListing,
    BookingReschedule,
    DoctorCollection,
    Health,
    OpenAPIDocument,
    SlotCollection,
)
from api.stream import EventStream
from api.webhooks import DeliveryLog, DeliveryReplay, WebhookCollection, WebhookItem, WebhookRotation
from clinic import keys, lifecycle, logs, store
from clinic.broker import parameters
from clinic.broker.deadletters import DeadLetters
from clinic.broker.dispatch import rabbitmq_broker
from clinic.broker.send_relay import SendRelay
from clinic.config import Settings
from clinic.secretbox import SecretBox

logger = logging.getLogger("api")

#: The API's send relay publishes at most one round of steps this often: under load a step waits
#: up to this long for the next round, and each request costs less (689 -> 782 req/s saturated);
#: after a quiet moment a step goes out at once.
SEND_GATHER = 0.005


class DatabaseSession:
    """Whatever database connection a request took is given back when it ends
    (``store.close_session``). A request takes one from the pool at its first query (Peewee's
    ``autoconnect``), not up front: a ``POST /book`` whose key was verified lately queries
    nothing on its own thread (its booking is written by ``store.GroupCommit``), and the pool's
    lock, taken and given back by eight threads at once, cost it about 5% of its CPU."""

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
    dispatch: Callable[[lifecycle.Step], object],
    checks: dict[str, Callable[[], None]] | None = None,
    dead_letters: DeadLetters | None = None,
    clock: Callable[[], float] = time.monotonic,
    metrics: CollectorRegistry | None = None,
    box: SecretBox | None = None,
    commit: store.Commit = store.in_transaction,
) -> falcon.App:
    """Build the API around a dispatcher that sends a pipeline step (``lifecycle.Step``). The settings
    decide the access mode (``open_access``) and the per-key rate limit; ``commit`` stores a new
    booking (``store.GroupCommit`` in the API process)."""
    buckets = TokenBuckets(settings.rate_limit, clock=clock) if settings.rate_limit else None
    app = falcon.App(
        middleware=[
            RequestContext(),
            RequestMetrics(),
            DatabaseSession(),
            BodyLimit(),
            Authentication(open_access=settings.open_access, cache=keys.KeyCache(settings.key_cache_seconds)),
            RateLimiter(buckets),
            BodyValidation(),
        ]
    )
    errors.install(app)
    app.req_options.strip_url_path_trailing_slash = True
    app.req_options.media_handlers = media.handlers()
    dead_letters = dead_letters or DeadLetters(settings)
    box = box or SecretBox.for_settings(settings)
    if checks is None:
        checks = {"database": database_check, "broker": broker_check(settings.broker_url)}
    routes: dict[str, object] = {
        "/book": BookingCollection(settings, dispatch, slot_examples=example_slots(settings), commit=commit),
        "/booking/{booking_id}": BookingItem(settings),
        "/booking/{booking_id}/cancel": BookingCancel(settings),
        "/booking/{booking_id}/reschedule": BookingReschedule(
            settings, dispatch, slot_examples=example_slots(settings)
        ),
        "/bookings": BookingListing(settings),
        "/slots": SlotCollection(settings),
        "/doctors": DoctorCollection(settings),
        "/health": Health(checks),
        "/events": EventStream(settings),
        "/webhooks": WebhookCollection(settings, box),
        "/webhooks/{webhook_id}": WebhookItem(settings),
        "/webhooks/{webhook_id}/rotate-secret": WebhookRotation(box),
        "/webhooks/{webhook_id}/deliveries": DeliveryLog(),
        "/webhooks/{webhook_id}/deliveries/{delivery_id}/replay": DeliveryReplay(dispatch),
        "/admin/dead-letters": DeadLetterCollection(dead_letters),
        "/admin/dead-letters/replay": DeadLetterReplay(dead_letters),
        **fhir.routes(settings),
        "/admin/pipeline": PipelineState(settings),
        "/me": desk.Me(),
        "/calendar": desk.DayCalendar(settings),
        "/desk": desk.DeskPage(),
        "/metrics": Metrics(metrics or metrics_registry(settings)),
    }
    routes["/openapi.json"] = OpenAPIDocument(settings, routes)
    for path, resource in routes.items():
        app.add_route(path, resource)
    # The desk's script and style: files, deliberately not in /openapi.json (they are not the API).
    app.add_static_route("/desk/static", str(desk.STATIC))
    return app


def get_app() -> falcon.App:
    """The API process's composition root: settings from the environment, the database, and a
    relay that only sends (the API needs none of the workers' setup)."""
    settings = Settings.from_env()
    logs.configure(settings.log_format, flush_seconds=settings.log_flush_seconds)
    logging.getLogger("pika").setLevel(logging.CRITICAL)
    broker = rabbitmq_broker(settings)
    # Steps leave the request path: a request answers after its commit, and the relay publishes
    # in batches with publisher confirms (the sweeper re-sends what a crash left unsent).
    relay = SendRelay(settings, gather=SEND_GATHER)
    atexit.register(relay.close)
    store.connect(settings.database_url)
    store.create_schema()
    if settings.open_access:
        logger.warning(
            "CLINIC_OPEN_ACCESS=1: POST /book and GET /booking/{id} answer requests without a client key. "
            "This is for development only; unset it before exposing this API."
        )
    metrics = metrics_registry(settings)
    if settings.metrics_port is not None:
        serve_metrics_port(metrics, settings.metrics_port)
    return create_app(
        settings,
        dispatch=relay,
        dead_letters=DeadLetters(settings, broker=broker),
        metrics=metrics,
        # New bookings of concurrent requests share a transaction: one commit, one fsync.
        commit=store.GroupCommit(),
    )
