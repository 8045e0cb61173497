"""The HTTP floor: a bare Falcon app that answers every POST and GET with one constant JSON body,
served by waitress with exactly the API's command line (``clinic.ops.cli.api_argv``)."""

from __future__ import annotations

import falcon

from clinic.config import Settings
from clinic.ops.cli import api_argv

#: About the size of a ``POST /book`` answer, so both send the same bytes back.
BODY = {
    "booking_id": "00000000-0000-4000-8000-000000000000",
    "status": "pending",
    "patient": "Bench Patient 0",
    "slot": "2030-01-01T00:00:00+00:00",
    "doctor_id": 1,
}


class Constant:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = BODY

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.media = BODY


def get_app() -> falcon.App:
    """What waitress serves for the floor: one route, no middleware, no database, no broker."""
    app = falcon.App()
    app.add_route("/floor", Constant())
    return app


def floor_argv(settings: Settings, port: int) -> list[str]:
    """The API's own waitress command with only the application swapped."""
    argv = api_argv(settings, "127.0.0.1", port)
    argv[argv.index("api.app:get_app")] = "bench.http_floor:get_app"
    return argv
