"""Secrets at rest: the webhooks' signing secrets are stored encrypted with AES-256-GCM (an
authenticated cipher: a changed ciphertext fails to open), under a key derived from
``CLINIC_SECRET_KEY``, so a database dump alone cannot sign. Each secret is bound to its row's id
(the associated data), so a secret copied onto another row does not open there either.

When ``CLINIC_SECRET_KEY`` is unset the key is read from ``{data directory}/secret.key``, which
``clinic up`` and ``clinic init-db`` generate (mode 0600) on first run."""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from collections.abc import Callable
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clinic.config import Settings
from clinic.errors import ConfigError

KEY_FILE = "secret.key"
_VERSION = "v1:"


def key_path(settings: Settings) -> Path:
    return Path(settings.data_directory) / KEY_FILE


def ensure_secret_key(settings: Settings) -> Path | None:
    """Generate ``secret.key`` (0600, 256 random bits) unless CLINIC_SECRET_KEY is set or the file
    exists; return its path when it was made now."""
    if settings.secret_key:
        return None
    path = key_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    with os.fdopen(descriptor, "w") as file:
        file.write(secrets.token_urlsafe(32) + "\n")
    return path


def secret_key(settings: Settings) -> str:
    """CLINIC_SECRET_KEY, else the generated key file; ConfigError when there is neither."""
    if settings.secret_key:
        return settings.secret_key
    try:
        key = key_path(settings).read_text().strip()
    except FileNotFoundError:
        raise ConfigError(
            "CLINIC_SECRET_KEY", f"is unset and {key_path(settings)} does not exist (clinic init-db makes it)"
        ) from None
    if len(key) < 32:
        raise ConfigError("CLINIC_SECRET_KEY", f"in {key_path(settings)} must be at least 32 characters")
    return key


class SecretBox:
    """Seals and opens short secrets with AES-256-GCM under one key."""

    def __init__(self, key: str | Callable[[], str]) -> None:
        self._key = key
        self._aes: AESGCM | None = None

    @classmethod
    def for_settings(cls, settings: Settings) -> SecretBox:
        """A box whose key is read on first use, so a process that never touches a secret needs none."""
        return cls(lambda: secret_key(settings))

    @property
    def _cipher(self) -> AESGCM:
        if self._aes is None:
            key = self._key() if callable(self._key) else self._key
            self._aes = AESGCM(hashlib.sha256(key.encode("utf-8")).digest())
        return self._aes

    def seal(self, plain: str, *, bound_to: str) -> str:
        nonce = os.urandom(12)
        sealed = self._cipher.encrypt(nonce, plain.encode("utf-8"), bound_to.encode("utf-8"))
        return _VERSION + base64.b64encode(nonce + sealed).decode("ascii")

    def open(self, sealed: str, *, bound_to: str) -> str:
        if not sealed.startswith(_VERSION):
            raise ValueError("not a sealed secret")
        raw = base64.b64decode(sealed[len(_VERSION) :])
        try:
            return self._cipher.decrypt(raw[:12], raw[12:], bound_to.encode("utf-8")).decode("utf-8")
        except InvalidTag:
            raise ValueError("the secret does not open with this key") from None
