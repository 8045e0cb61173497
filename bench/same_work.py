"""The "same work" floor: a bare Falcon handler that does what ``POST /book`` must do and nothing
else, by hand: read the JSON body, commit one row, publish one message with a publisher confirm,
answer 202. No keys, limits, validation, metrics or relay. Served by waitress with exactly the
API's command line, on the run's database (its own table) and broker (its own queue).

``POST /book`` does more than this per request but moves the publish off the request path, so
beating this floor says the relay earns its place."""

from __future__ import annotations

import json
import threading
import uuid

import falcon
import pika

from bench.http_floor import BODY
from clinic import store
from clinic.broker import parameters
from clinic.config import Settings
from clinic.ops.cli import api_argv

TABLE = "bench_same_work"
#: The queue the floor publishes to, in the run's namespace (deleted with it).
STAGE = "same-work"
PERSISTENT = pika.BasicProperties(delivery_mode=2)


class SameWork:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.queue = settings.queue(STAGE)
        self.local = threading.local()
        self.insert = f"INSERT INTO {TABLE} (id, body) VALUES ({store.database.param}, {store.database.param})"

    def channel(self):
        """One connection per waitress thread, in confirm mode (a publish returns once confirmed)."""
        channel = getattr(self.local, "channel", None)
        if channel is None or channel.is_closed:
            channel = pika.BlockingConnection(parameters(self.settings.broker_url)).channel()
            channel.confirm_delivery()
            self.local.channel = channel
        return channel

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = BODY  # the bench's "is it up" probe

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = req.get_media()
        row_id = str(uuid.uuid4())
        with store.database.connection_context(), store.database.atomic():
            store.database.execute_sql(self.insert, (row_id, json.dumps(body)))
        self.channel().basic_publish("", self.queue, row_id.encode(), properties=PERSISTENT, mandatory=True)
        resp.status = falcon.HTTP_202
        resp.media = {**BODY, "booking_id": row_id}


def get_app() -> falcon.App:
    """The floor's composition root: the run's database and broker from the environment."""
    settings = Settings.from_env()
    store.connect(settings.database_url)
    with store.database.connection_context():
        store.database.execute_sql(f"CREATE TABLE IF NOT EXISTS {TABLE} (id VARCHAR(36) PRIMARY KEY, body TEXT)")
    connection = pika.BlockingConnection(parameters(settings.broker_url))
    arguments = {"x-queue-type": "quorum"} if settings.queue_type == "quorum" else {}
    connection.channel().queue_declare(settings.queue(STAGE), durable=True, arguments=arguments)
    connection.close()
    app = falcon.App()
    app.add_route("/floor", SameWork(settings))
    return app


def same_work_argv(settings: Settings, port: int) -> list[str]:
    """The API's own waitress command with only the application swapped."""
    argv = api_argv(settings, "127.0.0.1", port)
    argv[argv.index("api.app:get_app")] = "bench.same_work:get_app"
    return argv
