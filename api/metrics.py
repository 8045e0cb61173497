"""``GET /metrics``: the API's figures in Prometheus' text format, every name starting ``clinic_``.

Two kinds of figures:

- counted as requests are answered, in this process (``clinic_http_*``). When several API
  processes serve one port, ``clinic`` gives them one ``PROMETHEUS_MULTIPROC_DIR`` and any of them
  answers for all (prometheus_client's multiprocess mode);
- read at the time of the scrape (``BookingFigures``): bookings per status and the time from
  pending to a final status, from the history rows in the database (exact, and the same whichever
  process is asked; see ``clinic.figures``), the oldest pending booking's age, and each stage's
  queue depths from RabbitMQ (a passive declare with a one-second timeout, so a scrape never hangs
  on a broker that does not answer: ``clinic_broker_up`` then says 0).
"""

from __future__ import annotations

import logging
import os
import time

import falcon
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from api.contract import Operation, Reply
from clinic import figures, keys, store
from clinic.broker.queues import queue_depths
from clinic.config import Settings
from clinic.errors import BrokerUnavailable

logger = logging.getLogger(__name__)

#: Prometheus' text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds a scrape waits for RabbitMQ.
BROKER_TIMEOUT = 1.0
#: Request latencies: most answers take a few milliseconds; a slow client's body may take seconds.
LATENCY_BUCKETS = (0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# The *_created series only say when this process started counting: noise for these figures.
disable_created_metrics()

# Not registered anywhere at import: each app's registry takes them (or, in multiprocess mode,
# their files are read by a MultiProcessCollector).
HTTP_REQUESTS = Counter(
    "clinic_http_requests",
    "HTTP requests answered, by route template, method and status",
    ("route", "method", "status"),
    registry=None,
)
HTTP_LATENCY = Histogram(
    "clinic_http_request_duration_seconds",
    "Time from a request reaching the app to its answer, by route and method",
    ("route", "method"),
    buckets=LATENCY_BUCKETS,
    registry=None,
)
#: Event streams held open now; in multiprocess mode the live processes' values are summed.
OPEN_STREAMS = Gauge(
    "clinic_event_streams_open",
    "GET /events streams held open now, all API processes",
    multiprocess_mode="livesum",
    registry=None,
)


class RequestMetrics:
    """Middleware, first in the chain: counts each request by its route template (never its path,
    which holds booking ids) and times it."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.started = time.perf_counter()

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        started = getattr(req.context, "started", None)
        if started is None:
            return
        route = req.uri_template or ("/desk/static" if req.path.startswith("/desk/static/") else "unmatched")
        status = str(resp.status)[:3] if not isinstance(resp.status, int) else str(resp.status)
        HTTP_REQUESTS.labels(route, req.method, status).inc()
        HTTP_LATENCY.labels(route, req.method).observe(time.perf_counter() - started)


class BookingFigures:
    """A Prometheus collector that reads the bookings and the queues when it is scraped."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self):
        opened = store.database.is_closed()
        if opened:  # the metrics port's thread has no request around it
            store.open_session()
        try:
            yield from self._bookings()
        finally:
            if opened:
                store.close_session()
        yield from self._queues()

    def _bookings(self):
        total = CounterMetricFamily(
            "clinic_bookings",
            "Bookings that reached each status (pending when created), all processes",
            labels=["status"],
        )
        for status, count in figures.status_counts().items():
            total.add_metric([status], count)
        yield total
        decided = HistogramMetricFamily(
            "clinic_booking_decision_seconds",
            "Seconds from pending to the first final status (cancelled: while still pending)",
            labels=["status"],
        )
        for decision in figures.decision_times():
            buckets = [(repr(bound), count) for bound, count in decision.buckets] + [("+Inf", decision.count)]
            decided.add_metric([decision.status], buckets, decision.total_seconds)
        yield decided
        yield GaugeMetricFamily(
            "clinic_oldest_pending_booking_age_seconds",
            "How long the booking pending longest has waited (0: none is pending)",
            value=figures.oldest_pending_age(),
        )
        deliveries = GaugeMetricFamily(
            "clinic_webhook_deliveries",
            "Webhook deliveries (one per event and endpoint) by outcome so far: pending, delivered, failed",
            labels=["status"],
        )
        for status, count in figures.webhook_deliveries().items():
            deliveries.add_metric([status], count)
        yield deliveries

    def _queues(self):
        up = GaugeMetricFamily("clinic_broker_up", "1 when RabbitMQ answered this scrape, else 0")
        try:
            depths = queue_depths(self.settings, timeout=BROKER_TIMEOUT)
        except BrokerUnavailable:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        waiting = GaugeMetricFamily(
            "clinic_queue_messages",
            "Messages waiting in a stage's queue (ready) or its delay queue (delayed)",
            labels=["queue", "state"],
        )
        dead = GaugeMetricFamily("clinic_dead_letters", "Messages in a stage's dead-letter queue", labels=["queue"])
        for depth in depths:
            waiting.add_metric([depth.queue, "ready"], depth.ready)
            waiting.add_metric([depth.queue, "delayed"], depth.delayed)
            dead.add_metric([depth.queue], depth.dead)
        yield waiting
        yield dead


def metrics_registry(settings: Settings) -> CollectorRegistry:
    """What a scrape reads: this process's request figures (or every API process's, in
    multiprocess mode) and the figures read at scrape time."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(HTTP_REQUESTS)
        registry.register(HTTP_LATENCY)
        registry.register(OPEN_STREAMS)
    registry.register(BookingFigures(settings))
    return registry


def serve_metrics_port(registry: CollectorRegistry, port: int) -> bool:
    """Serve the registry without a key on 127.0.0.1:``port`` (for a scraper that cannot send
    headers). With several API processes the first to bind it serves it; False for the others."""
    try:
        start_http_server(port, addr="127.0.0.1", registry=registry)
    except OSError:
        return False
    logger.info("Metrics on http://127.0.0.1:%d/metrics", port)
    return True


class Metrics:
    """``GET /metrics`` with an admin key."""

    scope = keys.ADMIN
    operations = {
        "get": Operation(
            "metrics",
            "The figures in Prometheus' text format",
            description=(
                "Every name starts with `clinic_`. Also served without a key on 127.0.0.1:CLINIC_METRICS_PORT "
                "when that is set."
            ),
            replies=(Reply(200, "Prometheus text format 0.0.4", str, media_type="text/plain"),),
        )
    }

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = CONTENT_TYPE
        resp.cache_control = ["no-store"]
        resp.data = generate_latest(self.registry)
