"""Sending one webhook the Standard Webhooks way (https://www.standardwebhooks.com): headers
``webhook-id`` (the same on every attempt of one event to one endpoint), ``webhook-timestamp``
(Unix seconds) and ``webhook-signature`` (``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``
keyed with the decoded ``whsec_`` secret, one per valid secret, space-separated).

Only the standard library: ``http.client`` follows no redirect, and each request connects to the
address that was checked (a host that resolves to a loopback, private, link-local or multicast
address is refused, at registration and again here, since DNS can change)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import ipaddress
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from clinic.errors import InvalidField

#: Seconds to connect, and between bytes of the answer.
TIMEOUT = 10
#: At most this much of an answer is read (and then thrown away).
MAX_RESPONSE_BYTES = 64 * 1024
SECRET_PREFIX = "whsec_"


class RefusedAddress(Exception):
    """The URL's host resolves to an address webhooks may not reach."""


@dataclass(frozen=True)
class Answer:
    status: int
    retry_after: float | None = None  # seconds, from a Retry-After header


def signature(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 signature>`` of one message with one ``whsec_`` secret."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def headers(secrets: Sequence[str], message_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": "clinic-webhooks/1",
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(secret, message_id, timestamp, body) for secret in secrets),
    }


def check_url(url: str, *, allow_private: bool, resolve: Callable = socket.getaddrinfo) -> str:
    """The URL if webhooks may post to it; InvalidField naming ``url`` otherwise."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise InvalidField("url", "is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidField("url", "must be an http or https URL with a host")
    try:
        addresses(url, allow_private=allow_private, resolve=resolve)
    except RefusedAddress as refused:
        raise InvalidField("url", str(refused)) from None
    return url


def addresses(url: str, *, allow_private: bool, resolve: Callable = socket.getaddrinfo) -> list[str]:
    """The IP addresses the URL's host resolves to, each one allowed; RefusedAddress otherwise."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        found = resolve(parts.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise RefusedAddress("has a host that does not resolve") from None
    ips = list(dict.fromkeys(info[4][0] for info in found))
    if not allow_private:
        for ip in ips:
            if not is_public(ip):
                raise RefusedAddress("resolves to a loopback, private, link-local or multicast address")
    if not ips:
        raise RefusedAddress("has a host that does not resolve")
    return ips


def is_public(ip: str) -> bool:
    address = ipaddress.ip_address(ip.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return not (
        address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
    )


def post(url: str, body: bytes, request_headers: dict[str, str], *, allow_private: bool) -> Answer:
    """POST once, to the checked address; the answer's status and Retry-After. Raises RefusedAddress,
    or the network's own error (OSError, http.client.HTTPException) for the caller to classify."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ip = addresses(url, allow_private=allow_private)[0]
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    connection = kind(parts.hostname, port, timeout=TIMEOUT)
    # Connect to the address just checked, not to a second lookup of the name (TLS still checks the name).
    connection._create_connection = lambda _address, timeout=None, source=None: socket.create_connection(
        (ip, port), timeout, source
    )
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, body=body, headers=request_headers)
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        return Answer(response.status, _seconds(response.getheader("Retry-After")))
    finally:
        connection.close()


def _seconds(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(value.strip()))
    except ValueError:
        return None  # an HTTP date: the backoff decides
