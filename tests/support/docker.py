"""A Docker engine of the tests' own, and the images ``compose.yml`` runs, made without a registry.

No image registry is reachable from the machines the tests run on, so the base images are built
from the machine's own Debian packages (``mmdebstrap``, then ``docker import``) and cached as
tarballs under :data:`CACHE` (a second run skips the bootstrap); the project's image is built from
the Dockerfile on one of them, with pip reading a wheelhouse the host's pip made.

The engine (:class:`Dockerd`) has its own data root, exec root, pidfile and socket, no bridge and
no iptables rules, so it touches nothing of the host's: every container runs on host networking.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import http.server
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO, free_port, wait_until

#: Survives between runs on one machine; the bootstrap of the base images takes minutes.
CACHE = Path(os.environ.get("CLINIC_TEST_IMAGE_CACHE", "/var/cache/clinic-booking/test-images"))
#: The tag compose.yml gives the project's image.
PROJECT_IMAGE = "clinic-booking:latest"
#: What `make test` installs (the Makefile's `tools` target) when a command is missing.
DEBIAN_PACKAGES = {"dockerd": "docker.io", "docker": "docker.io", "mmdebstrap": "mmdebstrap"}


def command(name: str) -> str:
    """The path of a tool the deploy tests need; a missing one is a failure, never a skip."""
    path = shutil.which(name)
    if path is None:
        raise AssertionError(
            f"{name} is not installed: `make test` installs it (apt-get install {DEBIAN_PACKAGES.get(name, name)})"
        )
    return path


def run(argv: Sequence[str], *, timeout: float, env: dict[str, str] | None = None, **kw) -> str:
    """Run a command; a non-zero exit fails with its output."""
    result = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env, **kw)
    if result.returncode != 0:
        output = result.stdout[-3000:] + result.stderr[-3000:]
        raise AssertionError(f"{' '.join(argv)} exited {result.returncode}:\n{output}")
    return result.stdout


@dataclass(frozen=True)
class BaseImage:
    """A minimal Debian image with some packages, built by mmdebstrap and imported into Docker."""

    tag: str
    packages: tuple[str, ...]
    #: Dockerfile instructions ``docker import`` applies (USER, ENV, CMD).
    changes: tuple[str, ...] = ()
    #: Shell commands run on the finished tree (``$1`` is its root), before it is packed.
    customize: tuple[str, ...] = ()

    def tarball(self, suite: str) -> Path:
        key = hashlib.sha256(repr((suite, self.packages, self.customize, _BOOTSTRAP_OPTIONS)).encode()).hexdigest()[:12]
        return CACHE / f"{self._stem()}-{key}.tar"

    def build_tarball(self, suite: str) -> Path:
        """The cached root filesystem, bootstrapped first when this machine has none yet."""
        tarball = self.tarball(suite)
        if tarball.exists():
            return tarball
        CACHE.mkdir(parents=True, exist_ok=True)
        partial = tarball.with_suffix(f".{os.getpid()}.partial.tar")
        try:
            run(
                [
                    command("mmdebstrap"),
                    "--quiet",
                    "--variant=minbase",
                    f"--include={','.join(self.packages)}",
                    *_BOOTSTRAP_OPTIONS,
                    *(f"--customize-hook={hook}" for hook in self.customize),
                    suite,
                    str(partial),
                    *map(str, apt_sources(suite)),
                ],
                timeout=1200,
            )
            partial.rename(tarball)  # atomic: a concurrent run sees a whole tarball or none
        finally:
            partial.unlink(missing_ok=True)
        for stale in CACHE.glob(f"{self._stem()}-*.tar"):
            if stale != tarball and ".partial." not in stale.name:
                stale.unlink(missing_ok=True)  # an older package list's: never read again
        return tarball

    def _stem(self) -> str:
        return self.tag.replace("/", "-").replace(":", "-")


_BOOTSTRAP_OPTIONS = (
    '--aptopt=Acquire::Languages "none"',
    "--dpkgopt=path-exclude=/usr/share/doc/*",
    "--dpkgopt=path-exclude=/usr/share/man/*",
    "--dpkgopt=path-exclude=/usr/share/locale/*",
)

#: Stands in for ``python:3.11-slim`` (Debian 12's Python is 3.11): the Dockerfile's BASE.
PYTHON_BASE = BaseImage("clinic-test/python:bookworm", ("python3", "python3-venv", "passwd"))
#: Stands in for the ``rabbitmq`` image: runs the node as the rabbitmq user, logs to stdout.
RABBITMQ_IMAGE = BaseImage(
    "clinic-test/rabbitmq:bookworm",
    ("rabbitmq-server",),
    (
        "USER rabbitmq",
        "ENV HOME=/var/lib/rabbitmq RABBITMQ_LOGS=-",
        "WORKDIR /var/lib/rabbitmq",
        'CMD ["/usr/lib/rabbitmq/bin/rabbitmq-server"]',
    ),
)


#: Stands in for ``postgres:15`` (Debian 12's PostgreSQL is 15) in the cluster profile: the
#: cluster Debian's package made, answering on 127.0.0.1 without a password (a test's own engine).
POSTGRES_IMAGE = BaseImage(
    "clinic-test/postgres:bookworm",
    ("postgresql-15",),
    ("USER postgres",),
    ("printf 'local all all trust\\nhost all all 127.0.0.1/32 trust\\n' > \"$1/etc/postgresql/15/main/pg_hba.conf\"",),
)


def listen_port() -> int:
    """A free port below the kernel's ephemeral range, for a server that binds it later. A port
    ``free_port`` found free can meanwhile become the source port of any outgoing connection (on a
    machine where other tests open thousands to the shared RabbitMQ), and the server then fails
    with EADDRINUSE; ports below the range are only ever taken by servers."""
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    pick = random.SystemRandom()
    for _ in range(1000):
        port = pick.randrange(20000, low)
        if port in _RESERVED:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("0.0.0.0", port))
            except OSError:
                continue
            if port not in _TAKEN:
                _TAKEN.add(port)
                return port
    raise AssertionError(f"no free port between 20000 and {low}")


_TAKEN: set[int] = set()
#: Erlang distribution ports others bind later: the machine's node (25672) and tests/cluster's nodes.
_RESERVED = range(25600, 25700)


def debian_suite() -> str:
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip('"')
    raise AssertionError("/etc/os-release names no Debian suite: the deploy tests build their images with mmdebstrap")


def apt_sources(suite: str) -> list[Path]:
    """The machine's own apt sources for its suite (its mirror and security updates)."""
    candidates = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    found = [
        path
        for path in candidates
        if path.is_file() and path.suffix in (".list", ".sources") and suite in path.read_text()
    ]
    if not found:
        raise AssertionError(f"no apt source for {suite} in /etc/apt: mmdebstrap needs the machine's mirror")
    return found


class Dockerd:
    """A dockerd of the test's own under ``root``; ``stop`` ends it and every container it ran."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.socket = root / "docker.sock"
        self.exec_root = root / "exec"
        self.data_root = root / "data"
        self.pidfile = root / "dockerd.pid"
        self.log_path = root / "dockerd.log"
        self.env = {**os.environ, "DOCKER_HOST": f"unix://{self.socket}", "DOCKER_BUILDKIT": "0"}
        self.process: subprocess.Popen | None = None
        self.docker_cli = command("docker")

    def start(self, timeout: float = 120) -> Dockerd:
        self.log = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            [
                command("dockerd"),
                f"--data-root={self.data_root}",
                f"--exec-root={self.exec_root}",
                f"--pidfile={self.pidfile}",
                f"--host=unix://{self.socket}",
                "--bridge=none",
                "--iptables=false",
                "--ip6tables=false",
                "--ip-masq=false",
                "--log-level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def answers() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"dockerd exited {self.process.returncode}:\n{self.log_text()[-3000:]}")
            return subprocess.run([self.docker_cli, "version"], env=self.env, capture_output=True).returncode == 0

        wait_until(answers, timeout=timeout, interval=0.5, what="dockerd to answer on its socket")
        return self

    def docker(self, *args: str, timeout: float = 600, **kw) -> str:
        return run([self.docker_cli, *args], env=self.env, timeout=timeout, **kw)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """End the daemon (it stops its containers), then any container shim it left, then unmount."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        for pid in _processes_mentioning(str(self.exec_root)):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for mount in sorted(_mounts_under(self.root), reverse=True):
            subprocess.run(["umount", "-l", mount], capture_output=True)
        if hasattr(self, "log"):
            self.log.close()

    def import_base(self, image: BaseImage, suite: str) -> None:
        tarball = image.build_tarball(suite)
        changes = [arg for change in image.changes for arg in ("--change", change)]
        self.docker("import", *changes, str(tarball), image.tag)

    def build_project_image(self, wheelhouse: Path, base: str) -> None:
        """The Dockerfile as users build it, on ``base``, with pip reading ``wheelhouse`` only."""
        with serving(wheelhouse) as url:
            self.docker(
                "build",
                "--network=host",
                f"--build-arg=BASE={base}",
                "--build-arg=PIP_NO_INDEX=1",
                f"--build-arg=PIP_FIND_LINKS={url}",
                f"--tag={PROJECT_IMAGE}",
                str(REPO),
            )


def build_wheelhouse(into: Path) -> Path:
    """Wheels of the project's dependencies and its build backend, made by the host's pip."""
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(into), f"{REPO}[postgresql]"]
        + ["setuptools>=68"],
        timeout=900,
        cwd=tempfile.gettempdir(),
    )
    return into


@contextlib.contextmanager
def serving(directory: Path) -> Iterator[str]:
    """Serve a directory over HTTP on 127.0.0.1 (pip's --find-links reads its listing)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            with contextlib.suppress(OSError):
                if text.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
    return found


def _mounts_under(root: Path) -> list[str]:
    prefix = f"{root}/"
    with open("/proc/self/mounts") as mounts:
        return [fields[1] for line in mounts if (fields := line.split())[1].startswith(prefix)]


def timed(what: str, timings: dict[str, float]):
    """Record how long a step took (the deploy tests print them: cold and warm runs differ)."""

    @contextlib.contextmanager
    def step() -> Iterator[None]:
        started = time.monotonic()
        try:
            yield
        finally:
            timings[what] = time.monotonic() - started

    return step()
