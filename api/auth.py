"""Bearer API keys on the way in: ``/admin/*`` always needs an admin key; a resource whose
``scope`` is ``client`` needs a client key once any client key exists, and is open before."""

from __future__ import annotations

from collections.abc import Callable

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
    """Sets ``req.context.principal`` (a ``keys.Principal``, or None on an open endpoint).

    Admin paths are checked before routing, so an unknown ``/admin/...`` path or method answers
    401 too and says nothing about what exists there without a key."""

    def __init__(self, client_keys_exist: Callable[[], bool]) -> None:
        self.client_keys_exist = client_keys_exist

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.principal = None
        if is_admin_path(req.path):
            req.context.principal = keys.authenticate(bearer_token(req), keys.ADMIN)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        if getattr(resource, "scope", None) != keys.CLIENT:
            return
        token = bearer_token(req)
        try:
            req.context.principal = keys.authenticate(token, keys.CLIENT) if token else None
        except NotAuthenticated:
            if self.client_keys_exist():
                raise
            return  # open for local development: no client key exists, so none can be valid
        if req.context.principal is None and self.client_keys_exist():
            raise NotAuthenticated("a client API key is required", scope=keys.CLIENT)


def owner(req: falcon.Request) -> str | None:
    """The owner of the bookings this request may create and see (None: open, everyone's)."""
    principal = req.context.principal
    return principal.key_id if principal is not None else None
