"""Hostile and malformed requests against a real waitress (``clinic up``): never a 5xx, every
error is problem+json (from the app or, for what waitress refuses itself, from ``api.serve``)
naming what is wrong, nothing personal or internal leaks, and the server is still healthy
afterwards. Malformed HTTP goes over raw sockets."""

from __future__ import annotations

import json
import socket
import time
import uuid
from dataclasses import dataclass

import pytest

from api.serve import BODY_GRACE, HARD_BODY_LIMIT, IDLE_TIMEOUT
from tests.support import slot
from tests.support.keys import shared_clinic

# Never a real patient: if this appears in a log line or an error body, something leaked.
MARKER = "Zorblattqueen"
GOOD_SLOT = slot(10, 0)
PATIENT = f"Ana {MARKER}"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


@pytest.fixture(scope="module")
def server(tmp_path_factory, rabbitmq):
    """One ``clinic up`` with a client key for the whole corpus (it is read-mostly and slow to start)."""
    with shared_clinic(tmp_path_factory.mktemp("hostile"), rabbitmq, {"corpus": "client"}) as clinic:
        clinic.token = clinic.tokens["corpus"]
        yield clinic


def raw(port: int, data: bytes, *, timeout: float = 10) -> Reply:
    """Send bytes as they are and read the one answer (the server may close early)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # it may refuse before reading everything; its answer is still there to read
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
                if _complete(b"".join(chunks)):
                    break
        except ConnectionResetError:
            pass
    return _parse(b"".join(chunks))


def _complete(data: bytes) -> bool:
    head, sep, body = data.partition(b"\r\n\r\n")
    if not sep:
        return False
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def _parse(data: bytes) -> Reply:
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    assert lines and lines[0].startswith("HTTP/1."), f"no HTTP answer: {data[:200]!r}"
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return Reply(int(lines[0].split()[1]), headers, body)


def request(method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None) -> bytes:
    """A well-formed HTTP/1.1 request (Content-Length set, connection closed after)."""
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return "\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body


@dataclass
class Case:
    name: str
    data: bytes  # the whole request, as sent
    statuses: tuple[int, ...] = (400, 422)
    field: str | None = None  # the field the JSON error must name
    from_waitress: bool = False  # refused by waitress before the app (answered by api.serve's error task)
    auth: bool = True


def book(
    body: bytes | str | object,
    *,
    field: str | None = None,
    statuses=(400, 422),
    content_type="application/json",
    headers: dict[str, str] | None = None,
) -> tuple[bytes, tuple[int, ...], str | None, dict]:
    if not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode("utf-8")
    all_headers = {"Content-Type": content_type} if content_type else {}
    all_headers.update(headers or {})
    return body, statuses, field, all_headers


def booking(**fields) -> dict:
    return {"patient": PATIENT, "slot": GOOD_SLOT, **fields}


# (name, body, expected statuses, field the error names, extra headers)
BODIES = {
    # wrong types
    "patient is a number": book(booking(patient=42), field="patient"),
    "patient is null": book(booking(patient=None), field="patient"),
    "patient is a list": book(booking(patient=[MARKER]), field="patient"),
    "patient is an object": book(booking(patient={"name": MARKER}), field="patient"),
    "patient is true": book(booking(patient=True), field="patient"),
    "patient missing": book({"slot": GOOD_SLOT}, field="patient"),
    "slot is a number": book(booking(slot=20261207), field="slot"),
    "slot is null": book(booking(slot=None), field="slot"),
    "slot is a list": book(booking(slot=[GOOD_SLOT]), field="slot"),
    "slot missing": book({"patient": PATIENT}, field="slot"),
    "doctor_id is a string": book(booking(doctor_id="1"), field="doctor_id"),
    "doctor_id is a float": book(booking(doctor_id=1.5), field="doctor_id"),
    "doctor_id is true": book(booking(doctor_id=True), field="doctor_id"),
    "doctor_id is a list": book(booking(doctor_id=[1]), field="doctor_id"),
    "doctor_id is negative": book(booking(doctor_id=-1), field="doctor_id"),
    "doctor_id is huge": book(booking(doctor_id=10**30), field="doctor_id"),
    "body is a list": book([booking()], field="body"),
    "body is a string": book(json.dumps(PATIENT), field="body"),
    "body is a number": book("42", field="body"),
    "body is null": book("null", field="body"),
    "body is true": book("true", field="body"),
    "server-owned status": book(booking(status="confirmed"), field="status"),
    "server-owned doctor": book(booking(doctor="Dr. Ana Ruiz"), field="doctor"),
    "server-owned booking_id": book(booking(booking_id=str(uuid.uuid4())), field="booking_id"),
    "server-owned owner": book(booking(owner="someone-else"), field="owner"),
    "server-owned reason": book(booking(reason="vip"), field="reason"),
    # huge strings
    "patient of 201 characters": book(booking(patient="x" * 201), field="patient"),
    "patient of 60000 characters": book(booking(patient=MARKER * 4000), field="patient"),
    "slot of 60000 characters": book(booking(slot="9" * 60000), field="slot"),
    "field name of 50000 characters": book({**booking(), "k" * 50000: 1}),
    # nested JSON
    "patient nested 1000 deep": book(b'{"patient": ' + b"[" * 1000 + b"]" * 1000 + b', "slot": "x"}', field="body"),
    "body nested 30000 deep": book(b"[" * 30000 + b"]" * 30000, field="body"),
    "objects nested 6000 deep": book(b'{"a":' * 6000 + b"1" + b"}" * 6000, field="body"),
    # NUL bytes and other control characters
    "NUL in patient": book(booking(patient=f"Ana\u0000{MARKER}"), field="patient"),
    "NUL in slot": book(booking(slot=GOOD_SLOT + "\u0000"), field="slot"),
    "NUL in a field name": book({**booking(), "pati\u0000ent": 1}),
    "raw NUL byte in the body": book(b'{"patient": "Ana\x00", "slot": "x"}', field="body"),
    "bell in patient": book(booking(patient=f"Ana\u0007{MARKER}"), field="patient"),
    "newline in patient": book(booking(patient=f"Ana\n{MARKER}"), field="patient"),
    "right-to-left override in patient": book(booking(patient=f"Ana \u202e{MARKER}"), field="patient"),
    "zero-width space in patient": book(booking(patient=f"Ana\u200b{MARKER}"), field="patient"),
    "line separator in patient": book(booking(patient=f"Ana\u2028{MARKER}"), field="patient"),
    "private use character in patient": book(booking(patient=f"Ana\ue000{MARKER}"), field="patient"),
    "lone surrogate in patient": book(
        b'{"patient": "Ana \\ud800", "slot": "%s"}' % GOOD_SLOT.encode(), field="patient"
    ),
    "byte order mark in patient": book(booking(patient=f"\ufeff{MARKER}"), field="patient"),
    "only spaces as patient": book(booking(patient="   \t "), field="patient"),
    # invalid UTF-8 and other encodings
    "invalid UTF-8 byte": book(b'{"patient": "Ana \xff\xfe", "slot": "x"}', field="body"),
    "overlong UTF-8 slash": book(b'{"patient": "\xc0\xaf", "slot": "x"}', field="body"),
    "truncated UTF-8 sequence": book(b'{"patient": "Ana \xe2\x82", "slot": "x"}', field="body"),
    "UTF-16 body": book(json.dumps(booking()).encode("utf-16"), field="body"),
    "UTF-8 byte order mark": book(b"\xef\xbb\xbf" + json.dumps(booking()).encode(), field="body"),
    "CESU-8 surrogate bytes": book(b'{"patient": "\xed\xa0\x80", "slot": "x"}', field="body"),
    # JSON that is not quite JSON
    "empty body": book(b"", field="body"),
    "whitespace body": book(b"   \r\n ", field="body"),
    "unterminated object": book(b'{"patient": "Ana', field="body"),
    "single quotes": book(b"{'patient': 'Ana', 'slot': 'x'}", field="body"),
    "trailing comma": book(b'{"patient": "Ana", "slot": "x",}', field="body"),
    "comment": book(b'{"patient": "Ana" // who\n}', field="body"),
    "NaN": book(b'{"patient": "Ana", "slot": "x", "doctor_id": NaN}', field="body"),
    "Infinity": book(b'{"patient": "Ana", "slot": "x", "doctor_id": Infinity}', field="body"),
    "minus Infinity": book(b'{"patient": "Ana", "slot": "x", "doctor_id": -Infinity}', field="body"),
    "number beyond a float": book(b'{"patient": "Ana", "slot": "x", "doctor_id": 1e999}', field="body"),
    "integer of 5000 digits": book(b'{"patient": "Ana", "slot": "x", "doctor_id": ' + b"9" * 5000 + b"}", field="body"),
    "duplicate keys": book(b'{"patient": "Ana", "patient": "Eve", "slot": "x"}', field="body"),
    "two JSON documents": book(json.dumps(booking()) + json.dumps(booking()), field="body"),
    # wrong content types
    "text/plain": book(booking(), content_type="text/plain", statuses=(415,)),
    "form encoded": book(f"patient={MARKER}&slot=x", content_type="application/x-www-form-urlencoded", statuses=(415,)),
    "multipart": book(b"--b\r\n\r\nx\r\n--b--", content_type="multipart/form-data; boundary=b", statuses=(415,)),
    "XML": book(f"<booking><patient>{MARKER}</patient></booking>", content_type="application/xml", statuses=(415,)),
    "HTML": book("<script>alert(1)</script>", content_type="text/html", statuses=(415,)),
    "content type with a non-ASCII parameter": book(
        booking(), content_type='application/json; x="y\u00e9"', statuses=(202, 400, 415)
    ),
    # SQL injection: stored verbatim through parameters, or refused by the rules
    "SQL in patient": book(booking(patient="Robert'); DROP TABLE booking;--"), statuses=(202,)),
    "SQL in slot": book(booking(slot="2026-12-07 10:00' OR '1'='1"), field="slot"),
    "SQL in doctor_id": book(booking(doctor_id="1 OR 1=1"), field="doctor_id"),
    "SQL as a field name": book({**booking(), "patient'; DROP TABLE booking;--": 1}),
    # the Idempotency-Key header
    "idempotency key of 256 characters": book(booking(), statuses=(400,), headers={"Idempotency-Key": "k" * 256}),
    "idempotency key with a space": book(booking(), statuses=(400,), headers={"Idempotency-Key": "a b"}),
    "idempotency key with latin-1": book(booking(), statuses=(400,), headers={"Idempotency-Key": "caf\u00e9"}),
    "idempotency key with SQL": book(booking(), statuses=(400,), headers={"Idempotency-Key": "x' OR '1'='1"}),
}


def body_cases() -> list[Case]:
    cases = []
    for name, (body, statuses, named, headers) in BODIES.items():
        cases.append(Case(name, request("POST", "/book", body, headers), statuses, named))
    return cases


OTHER_CASES = [
    Case("SQL in the booking id", request("GET", "/booking/1'%20OR%20'1'%3D'1"), (404,)),
    Case("NUL in the booking id", request("GET", "/booking/%00"), (404,)),
    Case("path traversal as booking id", request("GET", "/booking/..%2F..%2Fetc%2Fpasswd"), (404,)),
    Case("script as booking id", request("GET", "/booking/%3Cscript%3Ealert(1)%3C%2Fscript%3E"), (404,)),
    Case("path of 8000 characters", request("GET", "/booking/" + "a" * 8000), (404,)),
    Case("PUT on /book", request("PUT", "/book", b"{}", {"Content-Type": "application/json"}), (405,)),
    Case("TRACE on /booking", request("TRACE", f"/booking/{uuid.uuid4()}"), (405,)),
    Case("no key at all", request("POST", "/book", json.dumps(booking()).encode()), (401,), auth=False),
    Case(
        "basic auth instead of bearer",
        request("GET", f"/booking/{uuid.uuid4()}", headers={"Authorization": "Basic YTpi"}),
        (401,),
        auth=False,
    ),
    Case(
        "bearer of 10000 characters",
        request("GET", f"/booking/{uuid.uuid4()}", headers={"Authorization": "Bearer " + "A" * 10000}),
        (401,),
        auth=False,
    ),
    Case(
        "forged key",
        request("GET", f"/booking/{uuid.uuid4()}", headers={"Authorization": "Bearer ck_000000000000_" + "x" * 43}),
        (401,),
        auth=False,
    ),
    Case(
        "SQL in the bearer token",
        request("GET", f"/booking/{uuid.uuid4()}", headers={"Authorization": "Bearer ck_' OR '1'='1"}),
        (401,),
        auth=False,
    ),
    Case(
        "header injection in the Authorization header",
        request("GET", f"/booking/{uuid.uuid4()}", headers={"Authorization": "Bearer x\r\nX-Admin: yes"}),
        (401,),
        auth=False,
    ),
    Case(
        "header injection in the Idempotency-Key",
        request(
            "POST",
            "/book",
            json.dumps(booking()).encode(),
            {"Content-Type": "application/json", "Idempotency-Key": "a\r\nSet-Cookie: x=1"},
        ),
        (202,),
    ),
    Case("admin path without key", request("GET", "/admin/dead-letters"), (401,), auth=False),
    Case("admin path with a client key", request("GET", "/admin/dead-letters"), (401,)),
    # Above the app's 64 KiB but below waitress's hard limit: the app's own 413.
    Case(
        "body of 100 KiB with its Content-Length",
        request("POST", "/book", b"{" + b" " * 100 * 1024 + b"}", {"Content-Type": "application/json"}),
        (413,),
    ),
    Case("body of 100 KiB without a key", request("POST", "/book", b" " * 100 * 1024), (413,), auth=False),
    Case(
        "chunked body above 64 KiB",
        b"POST /book HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"".join(b"4000\r\n" + b" " * 0x4000 + b"\r\n" for _ in range(5))
        + b"0\r\n\r\n",
        (413,),
    ),
    # Refused by waitress itself, before the application.
    Case(
        "chunked body above waitress's hard limit",
        b"POST /book HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"".join(b"10000\r\n" + b" " * 0x10000 + b"\r\n" for _ in range(HARD_BODY_LIMIT // 0x10000 + 1))
        + b"0\r\n\r\n",
        (413,),
        from_waitress=True,
    ),
    Case(
        "negative Content-Length",
        b"POST /book HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\nConnection: close\r\n\r\n{}",
        (400,),
        from_waitress=True,
    ),
    Case(
        "Content-Length that is not a number",
        b"POST /book HTTP/1.1\r\nHost: x\r\nContent-Length: ten\r\nConnection: close\r\n\r\n{}",
        (400,),
        from_waitress=True,
    ),
    Case(
        "Content-Length and chunked (smuggling)",
        b"POST /book HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n"
        + b"Connection: close\r\n\r\n0\r\n\r\n",
        (400, 501),
        from_waitress=True,
    ),
    Case(
        "headers above 16 KiB",
        request("GET", "/doctors", headers={"X-Filler": "f" * 20_000}),
        (431, 400),
        from_waitress=True,
    ),
    Case(
        "garbage request line",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n",
        (400,),
        from_waitress=True,
    ),
    Case(
        "malformed header line quoting a patient",
        f"POST /book HTTP/1.1\r\nHost: x\r\n{PATIENT}\r\nContent-Length: 2\r\n\r\n{{}}".encode(),
        (400,),
        from_waitress=True,
    ),
]


def all_cases() -> list[Case]:
    return body_cases() + OTHER_CASES


def test_the_corpus_has_at_least_60_hostile_requests():
    assert len(all_cases()) >= 60
    assert sum(case.from_waitress for case in all_cases()) >= 7
    assert len(BODIES) >= 30  # malformed bodies


@pytest.mark.parametrize("case", all_cases(), ids=lambda case: case.name)
def test_a_hostile_request_gets_a_4xx_never_a_5xx(server, case):
    data = case.data
    if case.auth:
        data = data.replace(b"Host: ", f"Authorization: Bearer {server.token}\r\nHost: ".encode(), 1)
    reply = raw(server.port, data)

    assert reply.status in case.statuses, (reply.status, reply.body[:500])
    assert MARKER.encode() not in reply.body or reply.status == 202
    assert b"Traceback" not in reply.body
    body = reply.json()
    if reply.status < 400:
        assert reply.headers["content-type"].startswith("application/json"), reply.headers
    else:
        assert reply.headers["content-type"] == "application/problem+json", reply.headers
        assert body["status"] == reply.status and body["title"] and body["detail"] and body["type"]
        if case.field:
            assert body["field"] == case.field, body
        if reply.status == 401:
            assert reply.headers["www-authenticate"].startswith("Bearer")
    assert "set-cookie" not in reply.headers and "x-admin" not in reply.headers


def test_an_idle_connection_is_closed_and_a_stalled_body_is_answered_408(server):
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=IDLE_TIMEOUT + 10)
    stalled = socket.create_connection(("127.0.0.1", server.port), timeout=IDLE_TIMEOUT + 10)
    started = time.monotonic()
    try:
        stalled.sendall(
            b"POST /book HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"
        )
        answer = _parse(stalled.recv(65536))  # the body never comes: refused once it is late
        stalled_after = time.monotonic() - started
        assert stalled.recv(65536) == b""
        assert idle.recv(65536) == b""  # nothing was ever sent: closed without a word
        idle_after = time.monotonic() - started
    finally:
        idle.close()
        stalled.close()
    assert answer.status == 408 and answer.headers["content-type"] == "application/problem+json"
    assert answer.json()["status"] == 408
    assert BODY_GRACE - 1 <= stalled_after <= BODY_GRACE + 5
    assert IDLE_TIMEOUT - 1 <= idle_after <= IDLE_TIMEOUT + 5


def test_after_the_corpus_the_server_is_healthy_and_leaked_nothing(server):
    for case in all_cases():  # again, so this test also holds when run on its own
        data = case.data.replace(b"Host: ", f"Authorization: Bearer {server.token}\r\nHost: ".encode(), 1)
        assert raw(server.port, data).status < 500, case.name
    health = raw(server.port, request("GET", "/health"))
    assert health.status == 200, health.body
    good = raw(
        server.port,
        request(
            "POST",
            "/book",
            json.dumps({"patient": "Ana Pérez", "slot": slot(11, 0)}).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {server.token}"},
        ),
    )
    assert good.status == 202, good.body
    log = server.log_text()
    assert "Refused a request from 127.0.0.1 before the app: 400 Bad Request" in log  # logged, by status alone
    assert MARKER not in log
    assert "Ana Pérez" not in log
    assert "Traceback" not in log
    assert "Unhandled" not in log
