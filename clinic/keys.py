"""API keys: ``ck_<id>_<secret>`` bearer tokens with a scope, kept as a hash, revocable.

The id finds the row; the secret is compared by its SHA-256 in constant time. The secret has
256 bits of entropy, so a plain hash is enough (no password stretching needed) and the token
is shown exactly once, when it is created.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from clinic.errors import ApiKeyNotFound, InvalidField, NotAuthenticated
from clinic.store import ApiKey, Compiled, database, utcnow

CLIENT, STAFF, ADMIN = "client", "staff", "admin"
SCOPES = (CLIENT, STAFF, ADMIN)
#: Which key scopes may do what a scope allows. A client key books and sees its own bookings; a
#: staff key (the front desk) books for anyone and sees and changes every booking; an admin key may
#: do everything a staff key can, and operate the pipeline (``/admin``, ``/metrics``).
GRANTED_BY = {CLIENT: (CLIENT, STAFF, ADMIN), STAFF: (STAFF, ADMIN), ADMIN: (ADMIN,)}
PREFIX = "ck_"
NAME_MAX_LENGTH = 100
_TOKEN = re.compile(r"^ck_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$")
# Compared against when the id is unknown, so a miss costs the same as a wrong secret.
_NO_SUCH_HASH = hashlib.sha256(b"no such key").hexdigest()
# Every request with a key not in the API's ``KeyCache`` runs this lookup, so its SQL is built once
# (Peewee would build it anew each time, half of the lookup's cost).
_KEY_BY_ID = Compiled(
    lambda id: ApiKey.select(ApiKey.secret_hash, ApiKey.revoked_at, ApiKey.scope, ApiKey.name).where(ApiKey.id == id)
)


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the key's id (the owner of the bookings it makes), its scope, and
    its name (recorded as ``by`` in the history of every booking it changes)."""

    key_id: str
    scope: str
    name: str = ""

    @property
    def sees_everyone(self) -> bool:
        """Whether this key sees and changes every booking (staff, admin), not only its own."""
        return self.scope in GRANTED_BY[STAFF]


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    token: str  # shown once, never stored


def create_key(name: str, scope: str, *, now: Callable[[], datetime] = utcnow) -> NewKey:
    """Store a new key of ``scope`` and return it with its token (the only time the token exists)."""
    if scope not in SCOPES:
        raise InvalidField("scope", f"must be one of {', '.join(SCOPES)}")
    if not isinstance(name, str) or not name.strip() or len(name) > NAME_MAX_LENGTH or not name.isprintable():
        raise InvalidField("name", f"must be 1 to {NAME_MAX_LENGTH} printable characters")
    key_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    with database.atomic():
        key = ApiKey.create(id=key_id, name=name.strip(), scope=scope, secret_hash=_hash(secret), created_at=now())
    return NewKey(key, f"{PREFIX}{key_id}_{secret}")


class KeyCache:
    """The keys this process verified in the last ``seconds``, so that a client's requests do not
    each read its key: one read a key a ``seconds`` instead of one a request (a fifth of the API's
    CPU a ``POST /book``). The price is that a revoked key is refused by each API process within
    ``seconds`` of its revocation instead of on the next request; with ``seconds`` 0 nothing is
    kept. Only keys found valid are kept (a forged token is read every time), each until
    ``seconds`` after it was read, never longer for being used; by the SHA-256 of its token, not
    the token. Per process, like the rate limit's buckets."""

    def __init__(self, seconds: float, *, clock: Callable[[], float] = time.monotonic, limit: int = 4096) -> None:
        self.seconds, self.clock, self.limit = seconds, clock, limit
        self._verified: dict[str, tuple[Principal, float]] = {}

    def get(self, token: str) -> Principal | None:
        found = self._verified.get(_hash(token)) if self.seconds > 0 else None
        if found is None or self.clock() >= found[1]:
            return None
        return found[0]

    def put(self, token: str, principal: Principal) -> None:
        if self.seconds > 0:
            if len(self._verified) >= self.limit:  # many keys: start again rather than grow
                self._verified.clear()
            self._verified[_hash(token)] = (principal, self.clock() + self.seconds)


def authenticate(token: str | None, scope: str, *, cache: KeyCache | None = None) -> Principal:
    """The principal of a valid, unrevoked ``token`` whose scope grants ``scope`` (``GRANTED_BY``);
    NotAuthenticated otherwise. With a ``cache``, a key it verified lately is not read again."""
    if not token:
        raise NotAuthenticated(_required(scope), scope=scope)
    principal = cache.get(token) if cache is not None else None
    if principal is None:
        principal = _verified(token, scope)
        if cache is not None:
            cache.put(token, principal)
    if principal.scope not in GRANTED_BY[scope]:
        raise NotAuthenticated(_required(scope), scope=scope)
    return principal


def _verified(token: str, scope: str) -> Principal:
    """The principal of a valid, unrevoked ``token``, read from the database; NotAuthenticated
    (naming ``scope``) otherwise."""
    match = _TOKEN.match(token)
    key_id, secret = match.groups() if match else ("", token)
    found = _KEY_BY_ID.tuples(id=key_id) if key_id else []
    secret_hash, revoked_at, key_scope, name = found[0] if found else (_NO_SUCH_HASH, None, None, None)
    if not hmac.compare_digest(_hash(secret), secret_hash) or not found or revoked_at is not None:
        raise NotAuthenticated("the API key is not valid", scope=scope)
    return Principal(key_id, key_scope, name)


def revoke(key_id: str, *, now: Callable[[], datetime] = utcnow) -> ApiKey:
    """Revoke a key (a second revoke keeps the first time); ApiKeyNotFound if there is none. The
    API refuses it from the next request that reads it (within ``CLINIC_KEY_CACHE_SECONDS``)."""
    with database.atomic():
        ApiKey.update(revoked_at=now()).where(ApiKey.id == key_id, ApiKey.revoked_at.is_null()).execute()
        key = ApiKey.get_or_none(ApiKey.id == key_id)
    if key is None:
        raise ApiKeyNotFound(key_id)
    return key


def list_keys() -> list[ApiKey]:
    return list(ApiKey.select().order_by(ApiKey.created_at, ApiKey.id))


def client_keys_exist() -> bool:
    """Whether any unrevoked client key exists (``clinic up`` makes one when none does)."""
    return ApiKey.select().where(ApiKey.scope == CLIENT, ApiKey.revoked_at.is_null()).exists()


def create_local_key(name: str = "local") -> NewKey | None:
    """A first client key, so a fresh local install can book at once; None when a client key exists."""
    with database.atomic():
        if client_keys_exist():
            return None
        return create_key(name, CLIENT)


def _required(scope: str) -> str:
    """What a request without a fitting key is told: "a client, staff or admin API key is required"."""
    *others, last = GRANTED_BY[scope]
    named = f"{', '.join(others)} or {last}" if others else last
    return f"{'an' if named[0] in 'aeiou' else 'a'} {named} API key is required"


def _hash(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()
