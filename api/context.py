"""Each request's id and its access line.

An incoming ``X-Request-ID`` (1 to 128 visible ASCII characters) is kept, else one is made; it is
returned in the answer, set for every log line of the request (``clinic.logs``) and sent with the
booking's messages (``clinic.broker.dispatch``), so the workers' lines carry it too. One line per
request says its route template (never the path or query, which may hold ids or names), status,
time and the booking it concerned."""

from __future__ import annotations

import logging
import re
import time

import falcon

from clinic import ids, logs

HEADER = "X-Request-ID"
_VALID = re.compile(r"^[!-~]{1,128}$")
access = logging.getLogger("api.access")


class RequestContext:
    """Middleware, first in the chain: binds ``request_id`` (and ``booking_id`` once routed)."""

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        sent = req.get_header(HEADER)
        request_id = sent if sent and _VALID.match(sent) else ids.uuid4().hex
        req.context.request_id = request_id
        req.context.log_tokens = logs.bind(request_id=request_id)
        req.context.log_started = time.perf_counter()
        resp.set_header(HEADER, request_id)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if "booking_id" in params:
            req.context.log_tokens += logs.bind(booking_id=params["booking_id"][:64])

    def process_response(self, req, resp, resource, req_succeeded: bool) -> None:
        tokens = getattr(req.context, "log_tokens", None)
        if tokens is None:
            return
        booking_id = None
        if resp.location and resp.location.startswith("/booking/"):
            booking_id = resp.location.removeprefix("/booking/")  # the booking this request made
        elapsed = time.perf_counter() - req.context.log_started
        route = req.uri_template or "unmatched"
        status = str(resp.status)[:3]
        extra = {"booking_id": booking_id} if booking_id else {}
        access.info("%s %s %s %.1fms", req.method, route, status, elapsed * 1000, extra=extra)
        logs.unbind(tokens)
