"""compose.yml run for real by the tests' own Docker engine, with the tests' host-network override."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path
from typing import Any

import yaml

from tests.support import REPO, Response, http, wait_until
from tests.support.docker import Dockerd, command, listen_port, run

OVERRIDE = REPO / "tests" / "deploy" / "compose.override.yml"


class ComposeProject:
    """One ``docker-compose`` project of compose.yml plus the override; ``down`` removes it and its
    volumes. ``env`` holds the free ports and the ``CLINIC_*`` values compose substitutes."""

    def __init__(
        self,
        engine: Dockerd,
        log_path: Path,
        *,
        profiles: tuple[str, ...] = (),
        api_service: str = "api",
        **clinic: str,
    ) -> None:
        self.engine = engine
        self.log_path = log_path
        self.file = log_path.with_name("compose.deploy.yml")
        self.name = f"clinicdeploy{uuid.uuid4().hex[:8]}"
        self.profiles = profiles
        self.api_service = api_service
        self.api_port = listen_port()
        self.env = {k: v for k, v in engine.env.items() if not k.startswith("CLINIC_")}
        self.env.update(
            COMPOSE_PROJECT_NAME=self.name,
            CLINIC_TEST_API_PORT=str(self.api_port),
            CLINIC_TEST_AMQP_PORT=str(listen_port()),
            CLINIC_TEST_DIST_PORT=str(listen_port()),
            CLINIC_TEST_EPMD_PORT=str(listen_port()),
            CLINIC_TEST_CLUSTER_EPMD_PORT=str(listen_port()),
            CLINIC_TEST_PG_PORT=str(listen_port()),
            **{
                f"CLINIC_TEST_{kind}_PORT_{node}": str(listen_port()) for kind in ("AMQP", "DIST") for node in (1, 2, 3)
            },
            **clinic,
        )
        self.token: str | None = None

    def compose(self, *args: str, timeout: float = 600) -> str:
        if not self.file.exists():
            self.file.write_text(self._host_network_config())
        return self._compose(["-f", str(self.file)], *args, timeout=timeout)

    def _compose(self, files: list[str], *args: str, timeout: float) -> str:
        profiles = [arg for profile in self.profiles for arg in ("--profile", profile)]
        return run([command("docker-compose"), *files, *profiles, *args], env=self.env, timeout=timeout, cwd=REPO)

    def _host_network_config(self) -> str:
        """compose.yml merged with the override by docker-compose itself, less the published ports.
        Docker refuses port bindings on host networking, and docker-compose 1.x (Debian's) cannot
        drop list entries in an override (2.x's ``!reset`` can), so they are dropped here."""
        merged = yaml.safe_load(
            self._compose(["-f", str(REPO / "compose.yml"), "-f", str(OVERRIDE)], "config", timeout=60)
        )
        for service in merged["services"].values():
            service.pop("ports", None)
            if set(service.get("profiles", [])) - set(self.profiles):
                continue  # not started
            assert service.get("network_mode") == "host", (
                f"the override must put every service on host networking: {service}"
            )
        return yaml.safe_dump(merged, sort_keys=False)

    def up(self, *args: str, timeout: float = 600) -> ComposeProject:
        self.compose("up", "--detach", "--no-build", *args, timeout=timeout)
        wait_until(self.api_healthy, timeout=timeout, interval=1, what="the API container to answer /health")
        return self

    def api_healthy(self) -> bool:
        try:
            return http(self.api_port, "GET", "/health", timeout=3).status == 200
        except OSError:
            return False

    def down(self) -> None:
        """Keep the services' logs beside the test's files, then remove containers and volumes."""
        try:
            self.log_path.write_text(self.logs())
        except (AssertionError, OSError, subprocess.TimeoutExpired) as error:
            self.log_path.write_text(f"could not read the logs: {error}")
        self.compose("down", "--volumes", "--remove-orphans", "--timeout", "20", timeout=300)

    def logs(self) -> str:
        return self.compose("logs", "--no-color", "--timestamps", timeout=120)

    def container(self, service: str, index: int = 1) -> str:
        ids = self.compose("ps", "-q", service, timeout=60).split()
        assert len(ids) >= index, f"{service} has {len(ids)} container(s)"
        return sorted(ids)[index - 1]

    def inspect(self, container: str) -> dict[str, Any]:
        return json.loads(self.engine.docker("inspect", container, timeout=60))[0]

    def kill_main_process(self, service: str) -> tuple[str, int, int]:
        """``kill -9`` a container's main process from the host, as a crash would (``docker kill``
        is a manual stop, which the restart policy leaves stopped). Returns the container, its
        main process and its restart count before the kill."""
        container = self.container(service)
        state = self.inspect(container)
        pid = state["State"]["Pid"]
        assert pid > 0, f"{service} is not running: {state['State']}"
        os.kill(pid, signal.SIGKILL)
        return container, pid, state["RestartCount"]

    def wait_restarted(self, container: str, old_pid: int, restarts: int, timeout: float = 120) -> dict:
        def restarted() -> dict | None:
            state = self.inspect(container)
            running = state["State"]["Running"] and state["State"]["Pid"] not in (0, old_pid)
            return state if running and state["RestartCount"] > restarts else None

        return wait_until(restarted, timeout=timeout, interval=0.5, what=f"{container[:12]} to be restarted")

    def exec(self, service: str, *argv: str, timeout: float = 120) -> str:
        return self.compose("exec", "-T", service, *argv, timeout=timeout)

    def create_client_key(self) -> str:
        self.token = self.exec(
            self.api_service, "clinic", "keys", "create", "--scope", "client", "--name", "deploy"
        ).strip()
        return self.token

    def book(self, patient: str, when: str) -> Response:
        return http(
            self.api_port,
            "POST",
            "/book",
            {"patient": patient, "slot": when},
            {"Authorization": f"Bearer {self.token}"},
        )

    def booking(self, booking_id: str) -> dict:
        headers = {"Authorization": f"Bearer {self.token}"}
        response = http(self.api_port, "GET", f"/booking/{booking_id}", headers=headers)
        assert response.status == 200, response.body
        return response.json()

    def wait_final(self, booking_id: str, timeout: float = 120) -> dict:
        return wait_until(
            lambda: (b := self.booking(booking_id))["status"] != "pending" and b,
            timeout=timeout,
            interval=0.25,
            what=f"booking {booking_id} to be decided",
        )

    def rabbitmqctl(self, service: str, *args: str) -> Any:
        """``rabbitmqctl ... --formatter json`` in a node's container, parsed. The CLI prints a
        warning about RABBITMQ_ERLANG_COOKIE (the cluster's nodes use it) before the JSON."""
        output = self.exec(service, "rabbitmqctl", *args, "--formatter", "json")
        lines = output.splitlines()
        first = next((n for n, line in enumerate(lines) if line.startswith(("{", "["))), len(lines))
        return json.loads("\n".join(lines[first:]) or "null")

    def queue_counts(self, service: str = "rabbitmq") -> dict[str, dict]:
        listing = self.rabbitmqctl(service, "list_queues", "-q", "name", "messages_ready", "messages_unacknowledged")
        return {queue["name"]: queue for queue in listing or []}
