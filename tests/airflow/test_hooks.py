"""Kafka client settings come from the Airflow connection through the provider's hooks; the relay's
guarantees are layered on top and cannot be weakened by the connection."""

from __future__ import annotations

import json
from typing import Any

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay_airflow import hooks

pytestmark = pytest.mark.airflow


@pytest.fixture
def kafka_conn(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    extra = {
        "bootstrap.servers": "broker-1:9093",
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "relay",
        "sasl.password": "s3cret-kafka",
        "ssl.ca.location": "/etc/ssl/ca.pem",
        "acks": "1",
        "enable.idempotence": False,
        "enable.auto.commit": True,
    }
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_SECURE", json.dumps({"conn_type": "kafka", "extra": extra}))
    monkeypatch.setenv(
        "AIRFLOW_CONN_OUTBOX_SECURE",
        json.dumps({"conn_type": "mysql", "host": "db", "port": 3307, "login": "relay", "password": "p@ss/word",
                    "schema": "shop", "extra": {"ssl_ca": "/etc/ssl/db.pem"}}),
    )  # fmt: skip
    return extra


def test_producer_gets_tls_and_sasl_from_the_connection_but_keeps_idempotence(
    kafka_conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}
    monkeypatch.setattr(hooks, "Producer", lambda conf: seen.update(conf) or object())
    config = ServiceConfig.model_validate({"service": "s", "topic": "t"})
    hooks.OutboxProducerHook("kafka_secure", hooks.producer_settings(config)).get_producer()
    for key in (
        "bootstrap.servers",
        "security.protocol",
        "sasl.mechanism",
        "sasl.username",
        "ssl.ca.location",
    ):
        assert seen[key] == kafka_conn[key]
    assert seen["enable.idempotence"] is True and seen["acks"] == "all"
    assert seen["message.timeout.ms"] == config.kafka.delivery_timeout_ms


def test_consumer_gets_the_connection_but_never_auto_commits(
    kafka_conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    class FakeConsumer:
        def __init__(self, conf: dict[str, Any]) -> None:
            seen.update(conf)

        def subscribe(self, topics: list[str]) -> None:
            seen["topics"] = topics

    monkeypatch.setattr("airflow.providers.apache.kafka.hooks.consume.Consumer", FakeConsumer)
    hooks.OutboxConsumerHook(["results"], "kafka_secure", "grp").get_consumer()
    assert seen["security.protocol"] == "SASL_SSL" and seen["sasl.password"] == "s3cret-kafka"
    assert seen["enable.auto.commit"] is False and seen["group.id"] == "grp" and seen["topics"] == ["results"]


def test_mysql_url_comes_from_the_airflow_connection(kafka_conn: dict[str, Any]) -> None:
    url = hooks.sqlalchemy_url("outbox_secure")
    assert (url.drivername, url.host, url.port, url.username, url.database) == (
        "mysql+pymysql", "db", 3307, "relay", "shop",
    )  # fmt: skip
    assert url.password == "p@ss/word" and url.query["ssl_ca"] == "/etc/ssl/db.pem"
    assert "p@ss" not in str(url)  # rendered URLs (logs) hide the password
