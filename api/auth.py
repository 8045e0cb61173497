"""Bearer API keys on the way in: ``/admin/*`` always needs an admin key; a resource with a
``scope`` needs a key whose scope grants it (``keys.GRANTED_BY``: the booking endpoints, scope
``client``, take a client, staff or admin key). In open mode (development) a request without a key
is let through to the booking endpoints, and one with a key is still checked."""

from __future__ import annotations

import falcon

from clinic import keys


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
    401 too and says nothing about what exists there without a key. Keys verified lately are
    kept in ``cache`` (``keys.KeyCache``; none: each request reads its key)."""

    def __init__(self, *, open_access: bool = False, cache: keys.KeyCache | None = None) -> None:
        self.open_access = open_access
        self.cache = cache

    def process_request(self, req: falcon.Request, resp: falcon.Response) -> None:
        req.context.principal = None
        if is_admin_path(req.path):
            req.context.principal = keys.authenticate(bearer_token(req), keys.ADMIN, cache=self.cache)

    def process_resource(self, req: falcon.Request, resp: falcon.Response, resource, params) -> None:
        scope = getattr(resource, "scope", None)
        if scope is None or req.context.principal is not None:
            return
        token = bearer_token(req)
        if scope == keys.CLIENT and token is None and self.open_access and not req.get_header("Authorization"):
            return
        req.context.principal = keys.authenticate(token, scope, cache=self.cache)


def owner(req: falcon.Request) -> str | None:
    """Whose bookings this request may see and change: a client key's own (its id); None for a
    staff or admin key, or a request without a key in open mode: everyone's."""
    principal = req.context.principal
    return principal.key_id if principal is not None and not principal.sees_everyone else None


def caller(req: falcon.Request) -> str | None:
    """The key that sent this request (it owns the bookings it makes, and its Idempotency-Keys)."""
    principal = req.context.principal
    return principal.key_id if principal is not None else None


def by(req: falcon.Request) -> str | None:
    """The name of the key that sent this request, recorded in the history of what it changes."""
    principal = req.context.principal
    return principal.name if principal is not None else None
