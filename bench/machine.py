"""What the run ran on, so a figure is never read without its machine."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import pika


def describe(broker_url: str) -> dict:
    """CPU model and count, memory, kernel, Python, RabbitMQ version and the load average now."""
    return {
        "cpu": _cpu_model(),
        "cpus": os.cpu_count(),
        "memory_gib": _memory_gib(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "rabbitmq": _rabbitmq_version(broker_url),
        "loadavg_start": [round(x, 2) for x in os.getloadavg()],
    }


def _cpu_model() -> str:
    for line in _read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    for line in _read("/proc/meminfo").splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 1024**2, 1)
    return None


def _rabbitmq_version(url: str) -> str | None:
    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
    except (pika.exceptions.AMQPError, OSError):
        return None
    try:
        version = connection._impl.server_properties.get("version")  # what the broker announced
        return version.decode() if isinstance(version, bytes) else version
    finally:
        connection.close()


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""
