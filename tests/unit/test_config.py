from zoneinfo import ZoneInfo

import pytest

from clinic.config import RateLimit, Settings
from clinic.errors import ConfigError


def test_defaults_match_the_documented_contract():
    settings = Settings.from_env({})
    assert settings.database_url == "sqlite:///clinic.db"
    assert settings.broker_url == "amqp://guest:guest@127.0.0.1:5672/%2F"
    assert settings.namespace == "clinic"
    assert settings.timezone == ZoneInfo("UTC")
    assert len(settings.doctors) == 3
    assert settings.slot_minutes == 30
    assert settings.confirm_delay == (0.5, 2.0)
    assert settings.unavailability_rate == 0.2
    assert (settings.retry_min_backoff_ms, settings.retry_max_backoff_ms) == (1000, 30000)
    assert settings.sweep_after == 60
    assert settings.queues == ("clinic.process", "clinic.confirm", "clinic.reject", "clinic.notify", "clinic.webhooks")
    assert settings.exchange == "clinic.notifications"
    assert (settings.webhook_min_backoff_ms, settings.webhook_max_backoff_ms) == (5000, 1_800_000)
    assert settings.webhook_allow_private is False
    assert (settings.streams_per_process, settings.stream_max_seconds) == (4, 300)  # half of 8 threads
    assert settings.key_cache_seconds == 1.0


def test_integration_settings_are_read_and_checked():
    settings = Settings.from_env(
        {
            "CLINIC_WEBHOOK_MIN_BACKOFF_MS": "100",
            "CLINIC_WEBHOOK_MAX_BACKOFF_MS": "200",
            "CLINIC_WEBHOOK_ALLOW_PRIVATE": "1",
            "CLINIC_SECRET_KEY": "k" * 32,
            "CLINIC_STREAM_MAX": "2",
            "CLINIC_STREAM_MAX_SECONDS": "30",
            "CLINIC_DATA_DIR": "/var/lib/clinic",
            "CLINIC_KEY_CACHE_SECONDS": "0",
            "CLINIC_LOG_FLUSH_SECONDS": "0",
        }
    )
    assert settings.key_cache_seconds == 0 and settings.log_flush_seconds == 0
    assert (settings.webhook_min_backoff_ms, settings.webhook_max_backoff_ms) == (100, 200)
    assert settings.webhook_allow_private and settings.secret_key == "k" * 32
    assert (settings.streams_per_process, settings.stream_max_seconds) == (2, 30)
    assert settings.data_directory == "/var/lib/clinic"
    with pytest.raises(ConfigError, match="CLINIC_SECRET_KEY"):
        Settings.from_env({"CLINIC_SECRET_KEY": "short"})
    with pytest.raises(ConfigError, match="CLINIC_WEBHOOK_MIN_BACKOFF_MS"):
        Settings.from_env({"CLINIC_WEBHOOK_MIN_BACKOFF_MS": "300", "CLINIC_WEBHOOK_MAX_BACKOFF_MS": "200"})


def test_every_variable_is_read():
    settings = Settings.from_env(
        {
            "CLINIC_DATABASE_URL": "postgresql://db/clinic",
            "CLINIC_BROKER_URL": "amqp://u:p@rabbit:5672/%2F",
            "CLINIC_NAMESPACE": "north-wing",
            "CLINIC_TIMEZONE": "Europe/Madrid",
            "CLINIC_DOCTORS": "Dr. Ana Ruiz; Dr. Luis Gómez",
            "CLINIC_HOURS": "Mon-Fri 09:00-17:00; Sat 09:00-13:00",
            "CLINIC_SLOT_MINUTES": "15",
            "CLINIC_CONFIRM_DELAY": "0",
            "CLINIC_UNAVAILABILITY_RATE": "1",
            "CLINIC_RETRY_MIN_BACKOFF_MS": "10",
            "CLINIC_RETRY_MAX_BACKOFF_MS": "20",
            "CLINIC_SWEEP_AFTER": "5",
        }
    )
    assert settings.queue("process") == "north-wing.process"
    assert settings.timezone == ZoneInfo("Europe/Madrid")
    assert settings.doctors == ("Dr. Ana Ruiz", "Dr. Luis Gómez")
    assert len(settings.hours.periods) == 6
    assert settings.slot_minutes == 15
    assert settings.confirm_delay == (0.0, 0.0)
    assert settings.unavailability_rate == 1.0
    assert settings.sweep_after == 5


@pytest.mark.parametrize(
    "variable, value",
    [
        ("CLINIC_SLOT_MINUTES", "half an hour"),
        ("CLINIC_SLOT_MINUTES", "0"),
        ("CLINIC_UNAVAILABILITY_RATE", "1.5"),
        ("CLINIC_CONFIRM_DELAY", "2-1"),
        ("CLINIC_CONFIRM_DELAY", "soon"),
        ("CLINIC_TIMEZONE", "Mars/Olympus_Mons"),
        ("CLINIC_HOURS", "weekdays 9 to 5"),
        ("CLINIC_HOURS", "Mon-Fri 18:00-08:00"),
        ("CLINIC_DOCTORS", ";;"),
        ("CLINIC_DOCTORS", "Dr. A;Dr. A"),
        ("CLINIC_NAMESPACE", "has space"),
        ("CLINIC_NAMESPACE", "dots.are.separators"),
        ("CLINIC_SWEEP_AFTER", "5"),  # shorter than the default retries can take
        ("CLINIC_KEY_CACHE_SECONDS", "-1"),
        ("CLINIC_KEY_CACHE_SECONDS", "a while"),
        ("CLINIC_LOG_FLUSH_SECONDS", "6"),
        ("CLINIC_LOG_FLUSH_SECONDS", "-0.1"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(variable, value):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({variable: value})
    assert error.value.variable == variable
    assert str(error.value).startswith(variable)


def test_the_sweeper_waits_longer_than_the_retries_can_take():
    settings = Settings.from_env({"CLINIC_RETRY_MIN_BACKOFF_MS": "1000", "CLINIC_RETRY_MAX_BACKOFF_MS": "30000"})
    # two retried actors, backoffs of 1 s, 2 s and 4 s each, plus the confirmer's 2 s at most
    assert settings.longest_legitimate_wait == pytest.approx(16.0)
    assert settings.sweep_after > settings.longest_legitimate_wait


@pytest.mark.parametrize(
    "value, per_second, burst",
    [("20/s", 20, 40), ("20/s:5", 20, 5), ("600/m", 10, 20), ("1/h", 1 / 3600, 1), ("2.5/s", 2.5, 5)],
)
def test_the_rate_limit_is_a_rate_with_an_optional_burst(value, per_second, burst):
    limit = Settings.from_env({"CLINIC_RATE_LIMIT": value}).rate_limit
    assert (limit.per_second, limit.burst) == (pytest.approx(per_second), burst)


def test_the_rate_limit_is_20_a_second_with_bursts_of_40_by_default_and_0_turns_it_off():
    assert Settings.from_env({}).rate_limit == RateLimit(20.0, 40)
    assert Settings.from_env({"CLINIC_RATE_LIMIT": "0"}).rate_limit is None


@pytest.mark.parametrize("value", ["20", "20/d", "-1/s", "0/s", "20/s:0", "fast", "20/s:4.5"])
def test_a_bad_rate_limit_stops_the_program_naming_the_variable(value):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"CLINIC_RATE_LIMIT": value})
    assert error.value.variable == "CLINIC_RATE_LIMIT"


def test_open_access_is_off_unless_set_to_1():
    assert Settings.from_env({}).open_access is False
    assert Settings.from_env({"CLINIC_OPEN_ACCESS": "0"}).open_access is False
    assert Settings.from_env({"CLINIC_OPEN_ACCESS": "1"}).open_access is True
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"CLINIC_OPEN_ACCESS": "yes"})
    assert error.value.variable == "CLINIC_OPEN_ACCESS"
