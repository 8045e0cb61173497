"""The clinic's configuration: every setting, read from the environment in one place."""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from clinic.errors import ConfigError
from clinic.schedule import OpeningHours

#: A request body larger than this is refused (413) by the API and by waitress itself.
MAX_REQUEST_BODY_BYTES = 64 * 1024

DEFAULT_DOCTORS = ("Dr. Ana Ruiz", "Dr. Luis Gómez", "Dr. Marta Vidal")
_NAMESPACE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,62}$")
_RATE = re.compile(r"^(?P<count>[0-9]+(?:\.[0-9]+)?)/(?P<unit>[smh])(?::(?P<burst>[0-9]+))?$")
_SECONDS = {"s": 1, "m": 60, "h": 3600}


@dataclass(frozen=True)
class RateLimit:
    """A token bucket: ``per_second`` tokens refill it, it holds at most ``burst``; one request takes one."""

    per_second: float
    burst: int


#: What CLINIC_LOG_FORMAT may say.
LOG_FORMATS = ("text", "json")
#: What CLINIC_QUEUE_TYPE may say: RabbitMQ's classic queues (one node) or quorum queues (replicated).
QUEUE_TYPES = ("classic", "quorum")


@dataclass(frozen=True)
class Settings:
    """Everything the API, the workers and the command line need to know about their deployment."""

    database_url: str = "sqlite:///clinic.db"
    broker_url: str = "amqp://guest:guest@127.0.0.1:5672/%2F"
    namespace: str = "clinic"
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    doctors: tuple[str, ...] = DEFAULT_DOCTORS
    hours: OpeningHours = field(default_factory=lambda: OpeningHours.parse("Mon-Fri 08:00-18:00"))
    slot_minutes: int = 30
    confirm_delay: tuple[float, float] = (0.5, 2.0)
    unavailability_rate: float = 0.2
    retry_min_backoff_ms: int = 1000
    retry_max_backoff_ms: int = 30000
    sweep_after: float = 60.0
    horizon_days: int = 365
    worker_processes: int = 1
    worker_threads: int = 8
    api_threads: int = 8
    #: Development only: the booking endpoints answer without a client key (a key sent is still checked).
    open_access: bool = False
    #: Seconds an API process trusts a key it has verified before reading it again (0: every request).
    key_cache_seconds: float = 1.0
    #: Requests per client key and API process; None for no limit.
    rate_limit: RateLimit | None = field(default_factory=lambda: RateLimit(20.0, 40))
    api_processes: int = 1
    queue_type: str = "classic"
    delivery_limit: int = 20
    #: A port on 127.0.0.1 where the API serves /metrics without a key (for a scraper that cannot
    #: send headers); None: /metrics only, with an admin key.
    metrics_port: int | None = None
    #: The first of the ports where the worker groups export Dramatiq's Prometheus figures (the
    #: group of stage number i, in STAGES order, on this port + i); None: not exported.
    worker_metrics_port: int | None = None
    #: The address the worker groups' metrics ports listen on (0.0.0.0 in a container).
    worker_metrics_host: str = "127.0.0.1"
    #: ``text`` (human lines) or ``json`` (one JSON object per line, for a log shipper).
    log_format: str = "text"
    #: Seconds a log line of INFO or below may wait to be written with others (0: each at once).
    log_flush_seconds: float = 0.2
    #: Backoff of a webhook delivery's retries (Dramatiq Retries), from the first to the longest.
    webhook_min_backoff_ms: int = 5000
    webhook_max_backoff_ms: int = 1_800_000
    #: Tests and private networks only: webhook URLs may resolve to loopback or private addresses.
    webhook_allow_private: bool = False
    #: Encrypts the webhooks' signing secrets at rest; None: read from ``{data_dir}/secret.key``.
    secret_key: str | None = None
    #: Where ``clinic up`` keeps what it generates (the secret key); None: beside the SQLite file.
    data_dir: str | None = None
    #: Live event streams per API process (None: half its threads, at least 1), and their length.
    stream_max: int | None = None
    stream_max_seconds: float = 300.0

    @property
    def exchange(self) -> str:
        """The direct exchange notifications are published to."""
        return f"{self.namespace}.notifications"

    def queue(self, name: str) -> str:
        """The broker queue for one stage of the pipeline, e.g. ``queue("process")``."""
        return f"{self.namespace}.{name}"

    @property
    def broker_urls(self) -> tuple[str, ...]:
        """One AMQP URL per RabbitMQ node (``CLINIC_BROKER_URL`` separated by ``;``)."""
        return tuple(url.strip() for url in self.broker_url.split(";") if url.strip())

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(self.queue(name) for name in STAGES)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build the settings from ``CLINIC_*`` variables; unset ones keep their defaults."""
        env = os.environ if environ is None else environ
        defaults = cls()
        read = _Reader(env)
        return cls(
            database_url=read.text("CLINIC_DATABASE_URL", defaults.database_url),
            broker_url=read.broker_url("CLINIC_BROKER_URL", defaults.broker_url),
            namespace=read.namespace("CLINIC_NAMESPACE", defaults.namespace),
            timezone=read.timezone("CLINIC_TIMEZONE", defaults.timezone),
            doctors=read.doctors("CLINIC_DOCTORS", defaults.doctors),
            hours=read.hours("CLINIC_HOURS", defaults.hours),
            slot_minutes=read.integer("CLINIC_SLOT_MINUTES", defaults.slot_minutes, 1, 24 * 60),
            confirm_delay=read.delay("CLINIC_CONFIRM_DELAY", defaults.confirm_delay),
            unavailability_rate=read.number("CLINIC_UNAVAILABILITY_RATE", defaults.unavailability_rate, 0, 1),
            retry_min_backoff_ms=read.integer(
                "CLINIC_RETRY_MIN_BACKOFF_MS", defaults.retry_min_backoff_ms, 1, 86_400_000
            ),
            retry_max_backoff_ms=read.integer(
                "CLINIC_RETRY_MAX_BACKOFF_MS", defaults.retry_max_backoff_ms, 1, 86_400_000
            ),
            sweep_after=read.number("CLINIC_SWEEP_AFTER", defaults.sweep_after, 1, 86_400),
            horizon_days=read.integer("CLINIC_HORIZON_DAYS", defaults.horizon_days, 1, 3650),
            worker_processes=read.integer("CLINIC_WORKER_PROCESSES", defaults.worker_processes, 1, 64),
            worker_threads=read.integer("CLINIC_WORKER_THREADS", defaults.worker_threads, 1, 256),
            api_threads=read.integer("CLINIC_API_THREADS", defaults.api_threads, 1, 256),
            open_access=read.flag("CLINIC_OPEN_ACCESS", defaults.open_access),
            key_cache_seconds=read.number("CLINIC_KEY_CACHE_SECONDS", defaults.key_cache_seconds, 0, 60),
            rate_limit=read.rate("CLINIC_RATE_LIMIT", defaults.rate_limit),
            api_processes=read.integer("CLINIC_API_PROCESSES", defaults.api_processes, 1, 64),
            queue_type=read.choice("CLINIC_QUEUE_TYPE", defaults.queue_type, QUEUE_TYPES),
            delivery_limit=read.integer("CLINIC_DELIVERY_LIMIT", defaults.delivery_limit, 1, 10_000),
            metrics_port=read.optional_integer("CLINIC_METRICS_PORT", 1, 65535),
            worker_metrics_port=read.optional_integer("CLINIC_WORKER_METRICS_PORT", 1, 65535 - len(STAGES)),
            worker_metrics_host=read.text("CLINIC_WORKER_METRICS_HOST", defaults.worker_metrics_host),
            log_format=read.choice("CLINIC_LOG_FORMAT", defaults.log_format, LOG_FORMATS),
            log_flush_seconds=read.number("CLINIC_LOG_FLUSH_SECONDS", defaults.log_flush_seconds, 0, 5),
            webhook_min_backoff_ms=read.integer(
                "CLINIC_WEBHOOK_MIN_BACKOFF_MS", defaults.webhook_min_backoff_ms, 1, 86_400_000
            ),
            webhook_max_backoff_ms=read.integer(
                "CLINIC_WEBHOOK_MAX_BACKOFF_MS", defaults.webhook_max_backoff_ms, 1, 86_400_000
            ),
            webhook_allow_private=read.flag("CLINIC_WEBHOOK_ALLOW_PRIVATE", defaults.webhook_allow_private),
            secret_key=read.secret("CLINIC_SECRET_KEY"),
            data_dir=env.get("CLINIC_DATA_DIR", "").strip() or None,
            stream_max=read.integer("CLINIC_STREAM_MAX", 0, 1, 10_000) or None,
            stream_max_seconds=read.number("CLINIC_STREAM_MAX_SECONDS", defaults.stream_max_seconds, 1, 86_400),
        )._checked()

    @property
    def streams_per_process(self) -> int:
        """At most this many event streams per API process, so they never take every thread."""
        return self.stream_max or max(1, self.api_threads // 2)

    @property
    def data_directory(self) -> str:
        """``CLINIC_DATA_DIR``, else the SQLite file's directory, else the current directory."""
        if self.data_dir:
            return self.data_dir
        if self.database_url.startswith("sqlite:///"):
            path = self.database_url[len("sqlite:///") :]
            return os.path.dirname(os.path.abspath(path)) if path and path != ":memory:" else "."
        return "."

    @property
    def longest_legitimate_wait(self) -> float:
        """Seconds a booking may rightly stay pending while its messages are retried: every
        backoff of the processor and the confirmer, plus the confirmer's think time."""
        backoff_ms = sum(min(self.retry_min_backoff_ms * 2**n, self.retry_max_backoff_ms) for n in range(3))
        return 2 * backoff_ms / 1000 + self.confirm_delay[1]

    def _checked(self) -> Settings:
        if self.retry_min_backoff_ms > self.retry_max_backoff_ms:
            raise ConfigError("CLINIC_RETRY_MIN_BACKOFF_MS", "must not be larger than CLINIC_RETRY_MAX_BACKOFF_MS")
        if self.webhook_min_backoff_ms > self.webhook_max_backoff_ms:
            raise ConfigError("CLINIC_WEBHOOK_MIN_BACKOFF_MS", "must not be larger than CLINIC_WEBHOOK_MAX_BACKOFF_MS")
        if self.sweep_after <= self.longest_legitimate_wait:
            raise ConfigError(
                "CLINIC_SWEEP_AFTER",
                f"must be longer than the retries can take ({self.longest_legitimate_wait:.1f}s with these backoffs)",
            )
        return self


#: The stages; each is one actor's queue, ``{namespace}.{stage}``, and its actor is
#: ``{stage}_booking`` (see :func:`actor_name`), except the webhooks' ``deliver_webhook``.
PROCESS, CONFIRM, REJECT, NOTIFY, WEBHOOKS = "process", "confirm", "reject", "notify", "webhooks"
PIPELINE = (PROCESS, CONFIRM, REJECT, NOTIFY)
STAGES = (*PIPELINE, WEBHOOKS)
_ACTORS = {WEBHOOKS: "deliver_webhook"}


def actor_name(stage: str) -> str:
    """The Dramatiq actor that serves a stage's queue: ``process`` -> ``process_booking``."""
    return _ACTORS.get(stage, f"{stage}_booking")


class _Reader:
    """Parses one variable at a time, naming the variable in every error."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env

    def _raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None or value.strip() == "":
            return None
        return value.strip()

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def broker_url(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        urls = [url.strip() for url in value.split(";") if url.strip()]
        if not urls:
            raise ConfigError(name, "must name at least one AMQP URL (several separated by ';')")
        for url in urls:
            if not url.startswith(("amqp://", "amqps://")):
                shown = url.split("@")[-1]  # never a password
                raise ConfigError(name, f"must be amqp:// or amqps:// URLs separated by ';', not {shown!r}")
        return ";".join(urls)

    def optional_integer(self, name: str, low: int, high: int) -> int | None:
        """A whole number from ``low`` to ``high``, or None when unset."""
        if self._raw(name) is None:
            return None
        return self.integer(name, low, low, high)

    def choice(self, name: str, default: str, choices: tuple[str, ...]) -> str:
        value = self._raw(name) or default
        if value not in choices:
            raise ConfigError(name, f"must be one of {', '.join(choices)}, not {value!r}")
        return value

    def namespace(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        if not _NAMESPACE.match(value):
            raise ConfigError(name, "must be letters, digits, '_' or '-' (at most 63), starting with a letter")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise ConfigError(name, f"must be a whole number, not {value!r}") from None
        if not low <= number <= high:
            raise ConfigError(name, f"must be between {low} and {high}")
        return number

    def number(self, name: str, default: float, low: float, high: float) -> float:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = float(value)
        except ValueError:
            raise ConfigError(name, f"must be a number, not {value!r}") from None
        if not low <= number <= high:
            raise ConfigError(name, f"must be between {low:g} and {high:g}")
        return number

    def flag(self, name: str, default: bool) -> bool:
        value = self._raw(name)
        if value is None:
            return default
        if value not in ("0", "1"):
            raise ConfigError(name, f"must be 0 or 1, not {value!r}")
        return value == "1"

    def rate(self, name: str, default: RateLimit | None) -> RateLimit | None:
        """``0`` for none, or ``N/s``, ``N/m``, ``N/h`` with an optional ``:BURST`` (default: two
        seconds' worth, at least 1), e.g. ``20/s``, ``20/s:40``, ``600/m``."""
        value = self._raw(name)
        if value is None:
            return default
        if value == "0":
            return None
        match = _RATE.match(value)
        if not match:
            raise ConfigError(name, f"must be 0 or a rate like 20/s, 20/s:40 or 600/m, not {value!r}")
        per_second = float(match["count"]) / _SECONDS[match["unit"]]
        burst = int(match["burst"]) if match["burst"] else max(1, math.ceil(2 * per_second))
        if not 0 < per_second <= 1_000_000 or not 1 <= burst <= 1_000_000:
            raise ConfigError(name, "must allow more than 0 and at most 1000000 requests a second, burst 1 to 1000000")
        return RateLimit(per_second, burst)

    def delay(self, name: str, default: tuple[float, float]) -> tuple[float, float]:
        value = self._raw(name)
        if value is None:
            return default
        low, _, high = value.partition("-")
        try:
            bounds = (float(low), float(high or low))
        except ValueError:
            raise ConfigError(name, f"must be seconds, like 0 or 0.5-2.0, not {value!r}") from None
        if not 0 <= bounds[0] <= bounds[1] <= 3600:
            raise ConfigError(name, "must be a range of seconds from 0 to 3600, smallest first")
        return bounds

    def secret(self, name: str) -> str | None:
        value = self._raw(name)
        if value is not None and len(value) < 32:
            raise ConfigError(name, "must be at least 32 characters (clinic up generates one when it is unset)")
        return value

    def timezone(self, name: str, default: ZoneInfo) -> ZoneInfo:
        value = self._raw(name)
        if value is None:
            return default
        try:
            return ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ConfigError(name, f"is not a known time zone: {value!r}") from None

    def doctors(self, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
        value = self._raw(name)
        if value is None:
            return default
        names = tuple(part.strip() for part in value.split(";") if part.strip())
        if not names:
            raise ConfigError(name, "must name at least one doctor, separated by ';'")
        if len(set(names)) != len(names):
            raise ConfigError(name, "names a doctor twice")
        return names

    def hours(self, name: str, default: OpeningHours) -> OpeningHours:
        value = self._raw(name)
        if value is None:
            return default
        try:
            return OpeningHours.parse(value)
        except ValueError as error:
            raise ConfigError(name, str(error)) from None
