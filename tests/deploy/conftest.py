"""The deploy tier: a Docker engine of the tests' own, the images compose.yml runs, and compose.

Every test module here is marked ``docker`` (``-m 'not docker'`` leaves them out). A missing docker,
dockerd, docker-compose or mmdebstrap fails the test (``make test`` installs them); nothing skips.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.support.docker import (
    POSTGRES_IMAGE,
    PYTHON_BASE,
    RABBITMQ_IMAGE,
    Dockerd,
    build_wheelhouse,
    command,
    debian_suite,
    timed,
)

#: Seconds each step took, shown at the end of the run: a first run on a machine bootstraps the base
#: images, later ones take them from the cache.
TIMINGS: dict[str, float] = {}


def pytest_terminal_summary(terminalreporter) -> None:
    if TIMINGS:
        steps = ", ".join(f"{what} {seconds:.0f}s" for what, seconds in TIMINGS.items())
        terminalreporter.write_line(f"deploy timings: {steps}")


@pytest.fixture(scope="session")
def engine(tmp_path_factory) -> Dockerd:
    """A dockerd of this session's own with the stand-in base images and the project's image."""
    for tool in ("dockerd", "docker", "docker-compose", "mmdebstrap"):
        command(tool)  # all of them, even when the images are cached: a fresh machine needs each
    suite = debian_suite()
    # A short path: the daemon's sockets live under it and a socket path has at most 107 bytes.
    root = Path(tempfile.mkdtemp(prefix="clinic-dockerd-"))
    dockerd = Dockerd(root)
    try:
        with timed("base images (bootstrap or cache)", TIMINGS):
            for image in (PYTHON_BASE, RABBITMQ_IMAGE, POSTGRES_IMAGE):
                image.build_tarball(suite)
        with timed("dockerd start", TIMINGS):
            dockerd.start()
        with timed("docker import", TIMINGS):
            for image in (PYTHON_BASE, RABBITMQ_IMAGE, POSTGRES_IMAGE):
                dockerd.import_base(image, suite)
        with timed("wheelhouse", TIMINGS):
            wheelhouse = build_wheelhouse(tmp_path_factory.mktemp("wheelhouse"))
        with timed("project image", TIMINGS):
            dockerd.build_project_image(wheelhouse, PYTHON_BASE.tag)
        yield dockerd
    finally:
        dockerd.stop()
        shutil.rmtree(root, ignore_errors=True)
