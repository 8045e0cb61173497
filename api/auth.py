"""Bearer API keys on the way in: ``/admin/*`` always needs an admin key; a resource whose
``scope`` is ``client`` needs a client key, unless the API runs in open mode (development), where
a request without a key is let through and one with a key is still checked."""

from __future__ import annotations

import falcon

from clinic import keys
from clinic.errors import NotAuthenticated


def bearer_token(req: falcon.Request) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None."""
    scheme, _, token = (req.get_header("Authorization") or "").strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def is_admin_path(path: str) -> bool:
    return path == "/admin" or path.startswith("/admin/")


class Authentication:
    """Sets ``req.context.principal`` (a ``keys.Principal``, or None when anonymous in open mode).

    Admin paths are checked before routing, so an unknown ``/admin/...`` path or method answers
    401 too and says nothing about what exists there without a key."""

    def __init__(self, *, open_access: bool = False) -> None:
        self.open_access = open_access

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.principal = None
        if is_admin_path(req.path):
            req.context.principal = keys.authenticate(bearer_token(req), keys.ADMIN)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if getattr(resource, "scope", None) != keys.CLIENT:
            return
        token = bearer_token(req)
        if token is None and self.open_access and not req.get_header("Authorization"):
            return
        try:
            req.context.principal = keys.authenticate(token, keys.CLIENT)
        except NotAuthenticated:
            # A resource an admin may read too (GET /bookings): an admin key is the other way in.
            if token is None or not getattr(resource, "admin_may_read", False):
                raise
            req.context.principal = keys.authenticate(token, keys.ADMIN)


def owner(req: falcon.Request) -> str | None:
    """The owner of the bookings this request may create and see (None: open mode or an admin
    key, everyone's)."""
    principal = req.context.principal
    return principal.key_id if principal is not None and principal.scope == keys.CLIENT else None
