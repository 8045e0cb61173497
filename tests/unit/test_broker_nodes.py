"""Several RabbitMQ nodes and the queue type: how the settings become connections and queue arguments."""

import pytest
from dramatiq.errors import ConnectionClosed

from clinic.broker import parameters, with_backoff
from clinic.broker.dispatch import declarations
from clinic.config import Settings
from clinic.errors import ConfigError

NODES = "amqp://g:g@10.0.0.1:5672/%2F; amqp://g:g@10.0.0.2:5672/%2F;amqp://g:g@10.0.0.3:5672/%2F"


def test_a_single_node_with_classic_queues_is_the_default():
    settings = Settings.from_env({})
    assert settings.broker_urls == ("amqp://guest:guest@127.0.0.1:5672/%2F",)
    assert (settings.queue_type, settings.delivery_limit, settings.api_processes) == ("classic", 20, 1)


def test_several_nodes_are_read_and_each_process_tries_all_of_them():
    settings = Settings.from_env({"CLINIC_BROKER_URL": NODES, "CLINIC_QUEUE_TYPE": "quorum"})
    assert len(settings.broker_urls) == 3
    hosts = [p.host for p in parameters(settings.broker_url)]
    assert sorted(hosts) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
    assert [p.host for p in parameters(settings.broker_url)] == hosts  # one order per process
    assert all(p.blocked_connection_timeout for p in parameters(settings.broker_url))


@pytest.mark.parametrize(
    "variable, value",
    [
        ("CLINIC_QUEUE_TYPE", "mirrored"),
        ("CLINIC_BROKER_URL", "amqp://a:5672;http://b:5672"),
        ("CLINIC_BROKER_URL", ";;"),
        ("CLINIC_DELIVERY_LIMIT", "0"),
        ("CLINIC_API_PROCESSES", "0"),
    ],
)
def test_a_bad_cluster_setting_is_refused_naming_the_variable(variable, value):
    with pytest.raises(ConfigError) as error:
        Settings.from_env({variable: value})
    assert error.value.variable == variable


def test_a_refused_url_is_shown_without_its_password():
    with pytest.raises(ConfigError) as error:
        Settings.from_env({"CLINIC_BROKER_URL": "http://user:secret@host"})
    assert "secret" not in str(error.value)


def test_classic_queues_are_declared_as_dramatiq_declares_them():
    (queue, stage), (dq, delayed), (xq, dead) = declarations("ns.process", "classic", 20)
    assert (queue, dq, xq) == ("ns.process", "ns.process.DQ", "ns.process.XQ")
    assert stage == delayed == {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "ns.process.XQ"}
    assert set(dead) == {"x-message-ttl"}


def test_quorum_queues_dead_letter_at_least_once_and_only_the_stage_queue_has_a_delivery_limit():
    (_, stage), (_, delayed), (_, dead) = declarations("ns.process", "quorum", 7)
    for arguments in (stage, delayed):
        assert arguments["x-queue-type"] == "quorum"
        assert arguments["x-dead-letter-strategy"] == "at-least-once"
        assert arguments["x-overflow"] == "reject-publish"  # at-least-once needs it
        assert arguments["x-dead-letter-routing-key"] == "ns.process.XQ"
    assert stage["x-delivery-limit"] == 7
    assert "x-delivery-limit" not in delayed
    assert dead["x-queue-type"] == "quorum" and "x-message-ttl" in dead


def test_a_refused_send_is_retried_with_a_growing_backoff_then_raised():
    pauses, now = [], [0.0]

    def sleep(seconds):
        pauses.append(seconds)
        now[0] += seconds

    def refused():
        raise ConnectionClosed(RuntimeError("election"))

    with pytest.raises(ConnectionClosed):
        with_backoff(refused, (ConnectionClosed,), within=3, sleep=sleep, clock=lambda: now[0])
    assert pauses[:4] == [0.05, 0.1, 0.2, 0.4] and max(pauses) == 1.0 and sum(pauses) <= 3

    answers = iter([ConnectionClosed(RuntimeError()), "sent"])

    def once_refused():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert with_backoff(once_refused, (ConnectionClosed,), sleep=sleep, clock=lambda: now[0]) == "sent"
