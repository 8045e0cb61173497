"""API keys on SQLite and PostgreSQL: shown once, stored hashed, scoped, revocable."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from clinic import keys
from clinic.errors import ApiKeyNotFound, InvalidField, NotAuthenticated
from clinic.store import ApiKey
from tests.support import REPO


def test_a_new_key_authenticates_with_its_scope_and_only_its_hash_is_stored(db):
    new = keys.create_key("alice's app", "client")
    assert new.token.startswith(f"ck_{new.key.id}_")
    assert keys.authenticate(new.token, "client") == keys.Principal(new.key.id, "client", "alice's app")
    stored = ApiKey.get_by_id(new.key.id)
    secret = new.token.split("_", 2)[2]
    assert secret not in (stored.secret_hash, stored.name) and len(stored.secret_hash) == 64


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: None,
        lambda t: "",
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # wrong secret
        lambda t: t.replace("ck_", "ck_f", 1)[:-1],  # another id
        lambda t: "ck_000000000000_" + t.split("_", 2)[2],  # unknown id
        lambda t: t + "x",
        lambda t: "Robert'); DROP TABLE api_key;--",
        lambda t: "ck_" + "\x00" * 12 + "_" + "x" * 43,
    ],
)
def test_a_wrong_token_is_not_authenticated(db, mangle):
    token = keys.create_key("app", "client").token
    with pytest.raises(NotAuthenticated):
        keys.authenticate(mangle(token), "client")
    assert ApiKey.select().count() == 1


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_cached_key_is_trusted_for_its_seconds_from_when_it_was_read_then_read_again(db):
    clock = Clock()
    cache = keys.KeyCache(1.0, clock=clock)
    new = keys.create_key("alice's app", "client")
    assert keys.authenticate(new.token, "client", cache=cache).key_id == new.key.id
    keys.revoke(new.key.id)
    clock.now += 0.9  # used again within the second: still trusted, and not for longer
    assert keys.authenticate(new.token, "client", cache=cache).key_id == new.key.id
    clock.now += 0.1
    with pytest.raises(NotAuthenticated):
        keys.authenticate(new.token, "client", cache=cache)


def test_a_cached_key_still_meets_its_scope_and_a_wrong_token_is_read_every_time(db):
    cache = keys.KeyCache(60.0)
    client = keys.create_key("app", "client")
    keys.authenticate(client.token, "client", cache=cache)
    with pytest.raises(NotAuthenticated):
        keys.authenticate(client.token, "staff", cache=cache)
    forged = client.token[:-1] + ("A" if client.token[-1] != "A" else "B")
    for _ in range(2):
        with pytest.raises(NotAuthenticated):
            keys.authenticate(forged, "client", cache=cache)


def test_with_no_cache_seconds_a_revoked_key_is_refused_on_the_next_request(db):
    cache = keys.KeyCache(0)
    new = keys.create_key("app", "client")
    assert keys.authenticate(new.token, "client", cache=cache).key_id == new.key.id
    keys.revoke(new.key.id)
    with pytest.raises(NotAuthenticated):
        keys.authenticate(new.token, "client", cache=cache)


def test_a_key_is_refused_where_its_scope_does_not_reach(db):
    client, staff = keys.create_key("app", "client"), keys.create_key("desk", "staff")
    for token, needed in ((client.token, "staff"), (client.token, "admin"), (staff.token, "admin")):
        with pytest.raises(NotAuthenticated):
            keys.authenticate(token, needed)


def test_an_admin_key_may_do_what_a_staff_key_may_and_a_staff_key_what_a_client_key_may(db):
    staff, admin = keys.create_key("desk", "staff"), keys.create_key("ops", "admin")
    assert keys.authenticate(staff.token, "client") == keys.Principal(staff.key.id, "staff", "desk")
    assert keys.authenticate(admin.token, "staff").scope == "admin"
    assert keys.authenticate(admin.token, "client").sees_everyone
    assert not keys.authenticate(keys.create_key("app", "client").token, "client").sees_everyone


def test_a_revoked_key_is_refused_at_once_and_revoking_twice_keeps_the_first_time(db):
    new = keys.create_key("app", "client")
    first = keys.revoke(new.key.id).revoked_at
    assert keys.revoke(new.key.id).revoked_at == first
    with pytest.raises(NotAuthenticated):
        keys.authenticate(new.token, "client")
    with pytest.raises(ApiKeyNotFound):
        keys.revoke("nosuchkey000")


def test_client_keys_exist_counts_only_unrevoked_client_keys(db):
    assert not keys.client_keys_exist()
    keys.create_key("ops", "admin")
    assert not keys.client_keys_exist()
    client = keys.create_key("app", "client")
    assert keys.client_keys_exist()
    keys.revoke(client.key.id)
    assert not keys.client_keys_exist()


@pytest.mark.parametrize(
    "name, scope, field",
    [("app", "root", "scope"), ("", "client", "name"), ("x" * 101, "client", "name"), ("a\nb", "client", "name")],
)
def test_a_key_needs_a_known_scope_and_a_printable_name(db, name, scope, field):
    with pytest.raises(InvalidField) as error:
        keys.create_key(name, scope)
    assert error.value.field == field


def test_a_local_key_is_made_only_while_no_client_key_exists(db):
    keys.create_key("ops", "admin")
    first = keys.create_local_key()
    assert first is not None and first.key.name == "local" and first.key.scope == "client"
    assert keys.authenticate(first.token, "client").key_id == first.key.id
    assert keys.create_local_key() is None
    keys.revoke(first.key.id)
    assert keys.create_local_key() is not None


def run_clinic(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "clinic", *args], capture_output=True, text=True, cwd=REPO, env=env, timeout=60
    )


def test_the_keys_command_creates_shows_once_lists_and_revokes(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "CLINIC_DATABASE_URL": f"sqlite:///{tmp_path}/clinic.db"}
    created = run_clinic("keys", "create", "--scope", "admin", "--name", "night shift", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    key_id = token.split("_")[1]
    assert token.startswith("ck_") and "shown only this once" in created.stderr

    listing = run_clinic("keys", "list", "--json", env=env)
    [row] = json.loads(listing.stdout)
    assert (row["id"], row["scope"], row["name"], row["revoked_at"]) == (key_id, "admin", "night shift", None)
    assert token.split("_", 2)[2] not in listing.stdout

    assert run_clinic("keys", "revoke", key_id, env=env).returncode == 0
    assert json.loads(run_clinic("keys", "list", "--json", env=env).stdout)[0]["revoked_at"]
    missing = run_clinic("keys", "revoke", "nosuchkey", env=env)
    assert missing.returncode == 1 and "nosuchkey" in missing.stderr


@pytest.mark.parametrize(
    "args, named",
    [
        (["keys", "create", "--scope", "root", "--name", "x"], "--scope"),
        (["keys", "create", "--scope", "client"], "--name"),
        (["keys", "create", "--scope", "client", "--name", ""], "--name"),
        (["dlq", "list", "--queue", "billing"], "billing"),
        (["dlq", "replay"], "--id"),
        (["dlq", "replay", "--id", "m", "--all"], "--all"),
    ],
)
def test_a_bad_keys_or_dlq_option_is_refused_naming_it(tmp_path, args, named):
    result = run_clinic(*args, env={"PATH": "/usr/bin:/bin", "CLINIC_DATABASE_URL": f"sqlite:///{tmp_path}/c.db"})
    assert result.returncode == 2
    assert named in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "command",
    [["keys", "create"], ["keys", "list"], ["keys", "revoke"], ["dlq", "list"], ["dlq", "replay"], ["dlq", "purge"]],
)
def test_every_keys_and_dlq_command_has_help(command):
    result = run_clinic(*command, "--help", env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0
    assert f"clinic {' '.join(command)}" in result.stdout
