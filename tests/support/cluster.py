"""Three RabbitMQ nodes of our own on this machine, clustered, for the cluster tests.

Started from Debian's ``rabbitmq-server`` with their own node names (``clinic-cluster-N@localhost``),
ports (5681-5683 for AMQP, 25681-25683 for Erlang distribution), data, log and config folders,
and the machine's Erlang cookie (copied into each node's own HOME). The machine's own node (5672,
``rabbit@localhost``) is never touched: every command here names one of our nodes with ``-n``,
and only beam processes whose command line holds one of our node names are ever killed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pika
import pika.exceptions

from tests.support import _processes

RABBITMQ_BIN = Path("/usr/lib/rabbitmq/bin")
MACHINE_COOKIE = Path("/var/lib/rabbitmq/.erlang.cookie")
NODE_PREFIX = "clinic-cluster-"
FIRST_PORT = 5681

#: The nodes' configuration: leaders spread over the nodes, an absolute memory watermark (each
#: node idles at 135-175 MiB) so an alarm does not depend on the machine's RAM, and no plugin.
NODE_CONF = """\
listeners.tcp.default = 127.0.0.1:{port}
cluster_formation.peer_discovery_backend = classic_config
{peers}
loopback_users = none
queue_leader_locator = balanced
vm_memory_high_watermark.absolute = 1GiB
disk_free_limit.absolute = 50MB
log.file.level = info
log.console = false
"""
#: At-least-once dead-lettering waits this long (ms) for a confirm before it tries again; RabbitMQ's
#: 180 s default stalled dead-lettering for minutes after a failover in the prototype.
ADVANCED_CONFIG = "[{rabbit, [{dead_letter_worker_publisher_confirm_timeout, 10000}]}].\n"


@dataclass
class Node:
    number: int
    base: Path
    peers: tuple[str, ...] = ()  # every node's name: a first boot joins the others (classic_config)

    @property
    def name(self) -> str:
        return f"{NODE_PREFIX}{self.number}@localhost"

    @property
    def port(self) -> int:
        return FIRST_PORT + self.number - 1

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    @property
    def home(self) -> Path:
        return self.base / self.name.split("@")[0]

    def environment(self) -> dict[str, str]:
        home = self.home
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))}
        env.update(
            HOME=str(home),
            RABBITMQ_NODENAME=self.name,
            RABBITMQ_NODE_IP_ADDRESS="127.0.0.1",
            RABBITMQ_NODE_PORT=str(self.port),
            RABBITMQ_DIST_PORT=str(self.port + 20000),
            # Not /etc/rabbitmq's env file: it names the machine's node.
            RABBITMQ_CONF_ENV_FILE=str(home / "rabbitmq-env.conf"),
            RABBITMQ_CONFIG_FILE=str(home / "rabbitmq.conf"),
            RABBITMQ_ADVANCED_CONFIG_FILE=str(home / "advanced.config"),
            RABBITMQ_ENABLED_PLUGINS_FILE=str(home / "enabled_plugins"),
            RABBITMQ_MNESIA_BASE=str(home / "mnesia"),
            RABBITMQ_LOG_BASE=str(home / "log"),
            RABBITMQ_PID_FILE=str(home / "pid"),
            ERL_EPMD_ADDRESS="127.0.0.1",
            # Erlang distribution on the loopback only, as the machine's own node does.
            RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}",
        )
        return env

    def prepare(self) -> None:
        home = self.home
        (home / "log").mkdir(parents=True, exist_ok=True)
        (home / "rabbitmq-env.conf").write_text("")
        peers = "".join(f"cluster_formation.classic_config.nodes.{n} = {p}\n" for n, p in enumerate(self.peers, 1))
        (home / "rabbitmq.conf").write_text(NODE_CONF.format(port=self.port, peers=peers))
        (home / "advanced.config").write_text(ADVANCED_CONFIG)
        (home / "enabled_plugins").write_text("[].\n")
        cookie = home / ".erlang.cookie"
        if not cookie.exists():
            shutil.copyfile(MACHINE_COOKIE, cookie)
            cookie.chmod(0o400)

    def ctl(self, *args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
        """``rabbitmqctl -n <this node> ...``."""
        return subprocess.run(
            [str(RABBITMQ_BIN / "rabbitmqctl"), "-n", self.name, *args],
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=check,
        )

    def start(self) -> float:
        """Start the node and wait for it; return the seconds it took."""
        started = time.monotonic()
        self.launch()
        self.await_startup(started)
        return time.monotonic() - started

    def launch(self) -> None:
        """Start the node's VM in the background."""
        self.prepare()
        log = open(self.home / "log" / "start.out", "ab")
        self.server = subprocess.Popen(
            [str(RABBITMQ_BIN / "rabbitmq-server")],
            env=self.environment(),
            cwd=self.home,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.close()

    def await_startup(self, started: float, limit: float = 120) -> None:
        deadline = started + limit
        # await_startup fails at once while the node has not yet registered with epmd: ask again.
        while self.ctl("await_startup", "--timeout", "10", timeout=30, check=False).returncode != 0:
            output = (self.home / "log" / "start.out").read_text(errors="replace")
            code = self.server.poll()
            assert code is None, f"{self.name} exited with {code}:\n{output[-3000:]}"
            assert time.monotonic() < deadline, f"{self.name} did not start in 120 s:\n{output[-3000:]}"
            time.sleep(0.3)

    def stop(self) -> None:
        """A clean stop of the whole node (what an operator does before an upgrade)."""
        self.ctl("stop", timeout=120, check=False)
        deadline = time.monotonic() + 60
        while self.beam_pids() and time.monotonic() < deadline:
            time.sleep(0.2)

    def kill(self) -> None:
        """``kill -9`` of the node's Erlang VM (and of its helpers)."""
        for pid in self.beam_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def beam_pids(self) -> list[int]:
        """This node's own Erlang processes: the VM and its port programs, found by node name."""
        return [pid for pid, cmd in _processes() if self.name.split("@")[0] in cmd and "beam" in cmd]

    def answers(self) -> bool:
        try:
            pika.BlockingConnection(pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2")).close()
            return True
        except pika.exceptions.AMQPError:
            return False


class Cluster:
    """Three nodes joined into one cluster (the first is the seed the others join)."""

    def __init__(self, base: Path, size: int = 3) -> None:
        names = tuple(f"{NODE_PREFIX}{n}@localhost" for n in range(1, size + 1))
        self.nodes = [Node(n, base, names) for n in range(1, size + 1)]
        self.startup_seconds: dict[str, float] = {}

    @property
    def url(self) -> str:
        """``CLINIC_BROKER_URL`` for every node."""
        return ";".join(node.url for node in self.nodes)

    def start(self) -> None:
        self.kill_leftovers()
        started = time.monotonic()
        for node in self.nodes:  # all at once: on first boot each finds the others (classic_config)
            node.launch()
        for node in self.nodes:
            node.await_startup(started)
            self.startup_seconds[node.name] = time.monotonic() - started
        self.startup_seconds["cluster"] = time.monotonic() - started
        members = self.nodes[0].ctl("cluster_status", "--formatter", "json").stdout
        for node in self.nodes:
            assert node.name in members, f"{node.name} did not join: {members}"

    def kill_leftovers(self) -> None:
        """Kill -9 any beam of OUR node names left by an earlier run that died without cleaning up."""
        for node in self.nodes:
            node.kill()

    def destroy(self) -> None:
        for node in self.nodes:
            if node.beam_pids():
                node.kill()
        deadline = time.monotonic() + 10
        while any(node.beam_pids() for node in self.nodes) and time.monotonic() < deadline:
            time.sleep(0.1)

    def living(self) -> list[Node]:
        return [node for node in self.nodes if node.beam_pids()]

    def queues(self, namespace: str, *fields: str) -> dict[str, dict]:
        """What a living node reports of the namespace's queues (``rabbitmqctl list_queues``)."""
        for node in self.living():
            try:
                listing = node.ctl("list_queues", "-q", "name", *fields, "--formatter", "json", check=False, timeout=60)
            except subprocess.TimeoutExpired:
                continue
            if listing.returncode == 0:
                found = json.loads(listing.stdout or "[]")
                return {queue["name"]: queue for queue in found if queue["name"].startswith(namespace + ".")}
        raise AssertionError("no node of the cluster answers")

    def busiest_node(self, namespace: str) -> Node:
        """The node that leads the most of the namespace's queues."""
        leaders = [queue["leader"] for queue in self.queues(namespace, "leader").values()]
        return max(self.nodes, key=lambda node: leaders.count(node.name))


@contextlib.contextmanager
def running_cluster(base: Path) -> Iterator[Cluster]:
    cluster = Cluster(base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)
