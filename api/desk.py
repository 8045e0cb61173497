"""The front desk's page (``/desk``: HTML, CSS and JavaScript kept as files in ``api/desk/``, no
build step) and the small reads it needs beside the booking endpoints: who the key is (``/me``) and
the rows of a day (``/calendar``)."""

from __future__ import annotations

from pathlib import Path

import falcon
import msgspec

from api import bodies
from api.contract import Operation, Reply
from api.resources import query
from clinic import keys, slots
from clinic.config import Settings
from clinic.errors import InvalidField

#: The page's files, served as they are at /desk/static/.
STATIC = Path(__file__).with_name("desk")
#: The page and its files come only from this server: no CDN, no inline script.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


class DeskPage:
    """``GET /desk[?date=YYYY-MM-DD]``: the front desk's page. Public: it holds no data; everything
    it shows it asks for with the key typed into it."""

    operations = {
        "get": Operation(
            "deskPage",
            "The front desk's page (HTML)",
            description="Sign in with an API key; `?date=YYYY-MM-DD` opens that day (the page reads it).",
            parameters=(
                {
                    "name": "date",
                    "in": "query",
                    "required": False,
                    "description": "the day to open (clinic zone); default today",
                    "schema": {"type": "string"},
                },
            ),
            replies=(Reply(200, "The page", str, media_type="text/html"),),
        )
    }

    def __init__(self) -> None:
        self.html = (STATIC / "index.html").read_bytes()

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = falcon.MEDIA_HTML
        resp.cache_control = ["no-cache"]
        resp.set_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        resp.set_header("X-Content-Type-Options", "nosniff")
        resp.data = self.html


class Me:
    """``GET /me``: the key this request is sent with (any scope)."""

    scope = keys.CLIENT
    operations = {
        "get": Operation(
            "whoAmI",
            "The key the request is sent with",
            replies=(
                Reply(200, "Its id, name and scope", bodies.Me),
                Reply(404, "No key was sent (open mode)"),
            ),
        )
    }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        principal = req.context.principal
        if principal is None:
            raise falcon.HTTPNotFound(description="no key was sent")
        resp.media = msgspec.to_builtins(bodies.Me(principal.key_id, principal.name, principal.scope))


class DayCalendar:
    """``GET /calendar[?date=YYYY-MM-DD]``: every slot of the clinic's hours on one day."""

    scope = keys.CLIENT

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.operations = {
            "get": Operation(
                "dayCalendar",
                "Every slot of one day, free or not",
                parameters=(
                    {
                        "name": "date",
                        "in": "query",
                        "required": False,
                        "description": "the day (clinic zone); default today",
                        "schema": {"type": "string", "format": "date", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
                    },
                ),
                replies=(
                    Reply(200, "The day's slots, in order", bodies.Day),
                    Reply(422, "A bad date; `field` names it"),
                ),
            )
        }

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        params = query(req)
        unknown = sorted(name for name in params if name != "date")
        if unknown:
            raise InvalidField(unknown[0][:64], "is not a parameter of this request")
        day, grid = slots.day_grid(self.settings, params.get("date"))
        found = [bodies.DaySlot(start, end) for start, end in grid]
        resp.media = msgspec.to_builtins(bodies.Day(day.isoformat(), self.settings.timezone.key, found))
