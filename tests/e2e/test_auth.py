"""Who may do what, on a real ``clinic up`` with keys made by ``clinic keys``."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support import PRINTED_KEY, REPO, http, slot, wait_until
from tests.support.keys import bearer, create_key, shared_clinic


@pytest.fixture(scope="module")
def keyed(tmp_path_factory, rabbitmq):
    """One running system for the module, whose keys exist before it starts: two clients, an admin."""
    keys = {"alice": "client", "bob": "client", "admin": "admin"}
    with shared_clinic(tmp_path_factory.mktemp("auth"), rabbitmq, keys) as clinic:
        yield clinic


def book(clinic, token: str | None, *, key: str | None = None, **fields):
    headers = bearer(token) if token else {}
    if key:
        headers["Idempotency-Key"] = key
    return http(clinic.port, "POST", "/book", {"patient": "Ana Pérez", "slot": slot(10, 0), **fields}, headers)


def keys_command(env, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clinic", "keys", *args], env=env, cwd=REPO, capture_output=True, text=True, timeout=60
    )


def test_admin_endpoints_refuse_missing_client_forged_and_revoked_keys(keyed):
    tokens = keyed.tokens
    refused = {
        "no key": {},
        "client key": bearer(tokens["alice"]),
        "forged key": bearer(tokens["admin"][:-4] + "AAAA"),
        "not bearer": {"Authorization": "Basic " + tokens["admin"]},
    }
    for what, headers in refused.items():
        for method, path in [
            ("GET", "/admin/dead-letters"),
            ("POST", "/admin/dead-letters/replay"),
            ("GET", "/admin/nowhere"),
            ("DELETE", "/admin/dead-letters"),
        ]:
            response = http(keyed.port, method, path, {"all": True} if method == "POST" else None, headers)
            assert response.status == 401, (what, method, path, response.status)
            assert response.headers["www-authenticate"].startswith("Bearer"), what
            assert response.json()["title"] == "Unauthorized"

    allowed = http(keyed.port, "GET", "/admin/dead-letters", headers=bearer(tokens["admin"]))
    assert allowed.status == 200, allowed.body
    assert allowed.json() == {"dead_letters": [], "count": 0, "retention_days": 7}

    short_lived = create_key(keyed.env, "admin", "short-lived")
    assert http(keyed.port, "GET", "/admin/dead-letters", headers=bearer(short_lived)).status == 200
    assert keys_command(keyed.env, "revoke", short_lived.split("_")[1]).returncode == 0
    refused_within_a_second(lambda: http(keyed.port, "GET", "/admin/dead-letters", headers=bearer(short_lived)).status)


def test_a_booking_belongs_to_the_client_that_made_it(keyed):
    alice, bob = keyed.tokens["alice"], keyed.tokens["bob"]
    created = book(keyed, alice)
    assert created.status == 202, created.body
    path = created.headers["location"]

    assert http(keyed.port, "GET", path, headers=bearer(alice)).status == 200
    assert http(keyed.port, "GET", path, headers=bearer(bob)).status == 404  # not 403: its existence is not told
    assert http(keyed.port, "GET", path).status == 401
    assert http(keyed.port, "GET", path, headers=bearer(keyed.tokens["admin"])).status == 200  # admin >= staff
    assert book(keyed, None).status == 401
    decided = wait_until(
        lambda: (b := http(keyed.port, "GET", path, headers=bearer(alice)).json())["status"] != "pending" and b,
        timeout=30,
        what="the booking to be decided",
    )
    assert decided["status"] == "confirmed"


def test_clients_idempotency_keys_are_their_own(keyed):
    alice, bob = keyed.tokens["alice"], keyed.tokens["bob"]
    first, again = book(keyed, alice, key="order-1"), book(keyed, alice, key="order-1")
    other_client = book(keyed, bob, key="order-1")
    assert (first.status, again.status, other_client.status) == (202, 202, 202)
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert other_client.json()["booking_id"] != first.json()["booking_id"]
    assert book(keyed, alice, key="order-1", doctor_id=2).status == 422


def test_concurrent_duplicates_make_one_booking(keyed):
    alice = keyed.tokens["alice"]
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: book(keyed, alice, key="burst"), range(16)))
    assert {reply.status for reply in replies} <= {202, 409}
    ids = {reply.json()["booking_id"] for reply in replies if reply.status == 202}
    assert len(ids) == 1, ids


def refused_within_a_second(status: Callable[[], int]) -> None:
    """An API process trusts a key it verified for ``CLINIC_KEY_CACHE_SECONDS`` (1 s) from that
    read. The key was last read before the revoke command ran, so once the command has returned
    it is refused within that second (half a second more for the requests themselves)."""
    wait_until(lambda: status() == 401, timeout=1.5, interval=0.05, what="the revoked key to be refused")


def test_a_revoked_client_key_is_refused_within_a_second(keyed):
    carol = create_key(keyed.env, "client", "carol's app")
    assert book(keyed, carol).status == 202
    assert keys_command(keyed.env, "revoke", carol.split("_")[1]).returncode == 0
    refused_within_a_second(lambda: book(keyed, carol).status)


def test_a_fresh_clinic_up_makes_a_local_key_and_bookings_need_a_key(clinic):
    printed = PRINTED_KEY.findall(clinic.log_text())
    assert printed == [clinic.token]  # shown once, and it is the key this harness books with
    listing = json.loads(keys_command(clinic.env, "list", "--json").stdout)
    assert [(key["name"], key["scope"]) for key in listing] == [("local", "client")]
    assert printed[0] not in json.dumps(listing)  # only its hash is stored

    refused = http(clinic.port, "POST", "/book", {"patient": "Ana Pérez", "slot": slot(10, 0)})
    assert refused.status == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["status"] == 401 and refused.json()["detail"]
    assert clinic.book().status == 202
    assert "CLINIC_OPEN_ACCESS" not in clinic.log_text()


def test_in_open_mode_bookings_need_no_key_a_key_sent_is_checked_and_the_api_warns_once(start_clinic):
    clinic = start_clinic(CLINIC_OPEN_ACCESS="1")
    anonymous = http(clinic.port, "POST", "/book", {"patient": "Ana Pérez", "slot": slot(10, 0)})
    assert anonymous.status == 202, anonymous.body
    assert http(clinic.port, "GET", anonymous.headers["location"]).status == 200
    assert book(clinic, clinic.token[:-4] + "AAAA").status == 401
    assert book(clinic, clinic.token).status == 202
    warnings = [line for line in clinic.log_text().splitlines() if "CLINIC_OPEN_ACCESS=1" in line]
    assert len(warnings) == 1, warnings
    assert http(clinic.port, "GET", "/admin/dead-letters").status == 401  # admin is never open
    security = http(clinic.port, "GET", "/openapi.json").json()["paths"]["/book"]["post"]["security"]
    assert security == [{"clientKey": []}, {"staffKey": []}, {"adminKey": []}, {}]


def test_a_key_over_its_rate_gets_429_with_retry_after_and_other_keys_do_not(start_clinic):
    clinic = start_clinic(CLINIC_RATE_LIMIT="1/m:3")  # three at once, then one a minute
    other = create_key(clinic.env, "client", "other")
    answers = [book(clinic, clinic.token) for _ in range(4)]
    assert [answer.status for answer in answers] == [202, 202, 202, 429]
    limited = answers[-1]
    assert limited.headers["content-type"] == "application/problem+json"
    assert limited.json()["status"] == 429
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    assert book(clinic, other).status == 202
    assert http(clinic.port, "GET", "/health").status == 200
