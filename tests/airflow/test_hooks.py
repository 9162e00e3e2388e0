"""Kafka client settings come from the Airflow connection through the provider's hooks; the relay's
guarantees are layered on top and cannot be weakened by the connection."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import event

from outbox_relay.config import ServiceConfig
from outbox_relay_airflow import hooks
from tests.stack import database_connection

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
        json.dumps(
            {
                "conn_type": "mysql",
                "host": "db",
                "port": 3307,
                "login": "relay",
                "password": "p@ss/word",
                "schema": "shop",
                "extra": {"ssl_ca": "/etc/ssl/db.pem"},
            }
        ),
    )
    return extra


def _built_with(monkeypatch: pytest.MonkeyPatch, client_class: str) -> dict[str, Any]:
    """Replace the confluent-kafka class the provider builds at ``client_class``; the settings it gets."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(client_class, lambda conf: seen.update(conf) or object())
    return seen


def test_producer_gets_tls_and_sasl_from_the_connection_but_keeps_idempotence(
    kafka_conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _built_with(monkeypatch, "airflow.providers.apache.kafka.hooks.produce.Producer")
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


def test_the_lag_probes_admin_client_gets_the_connection_but_never_creates_topics(
    kafka_conn: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _built_with(monkeypatch, "airflow.providers.apache.kafka.hooks.base.AdminClient")
    hooks.looking_admin_client("kafka_secure")
    assert seen["security.protocol"] == "SASL_SSL" and seen["sasl.password"] == "s3cret-kafka"
    assert seen["allow.auto.create.topics"] is False  # asking about a topic must not create it


def test_mysql_url_comes_from_the_airflow_connection(kafka_conn: dict[str, Any]) -> None:
    url = hooks.sqlalchemy_url("outbox_secure")
    assert (url.drivername, url.host, url.port, url.username, url.database) == (
        "mysql+pymysql",
        "db",
        3307,
        "relay",
        "shop",
    )
    assert url.password == "p@ss/word" and url.query["charset"] == "utf8mb4"
    assert "p@ss" not in str(url)  # rendered URLs (logs) hide the password
    assert hooks.OutboxDatabaseHook("outbox_secure").tls_settings() == {"ca": "/etc/ssl/db.pem"}


@pytest.mark.parametrize(
    ("extra", "ssl"),
    [
        ({"ssl_check_hostname": False, "ssl_verify_cert": False}, {}),  # a form's untouched switches
        ({"ssl_ca": "", "ssl_cert": None, "ssl_check_hostname": None, "ssl_verify_cert": ""}, {}),
        ({"ssl_verify_cert": True}, {"verify_mode": True}),  # TLS with the system's CAs
        ({"ssl_ca": "/ca.pem", "ssl_check_hostname": False}, {"ca": "/ca.pem", "check_hostname": False}),
    ],
)
def test_tls_is_on_only_when_a_file_or_a_true_switch_asks_for_it(
    monkeypatch: pytest.MonkeyPatch, extra: dict[str, Any], ssl: dict[str, Any]
) -> None:
    monkeypatch.setenv(
        "AIRFLOW_CONN_FORM_DB", json.dumps({"conn_type": "outbox", "host": "db", "extra": extra})
    )
    assert hooks.OutboxDatabaseHook("form_db").tls_settings() == ssl


def test_every_tls_extra_reaches_pymysql(monkeypatch: pytest.MonkeyPatch) -> None:
    extra = {
        "ssl_ca": "/ca.pem",
        "ssl_cert": "/c.pem",
        "ssl_key": "/k.pem",
        "ssl_capath": "/cas",
        "ssl_cipher": "ECDHE-RSA-AES256-GCM-SHA384",
        "ssl_check_hostname": "false",
        "ssl_verify_cert": True,
    }
    monkeypatch.setenv(
        "AIRFLOW_CONN_TLS_DB", json.dumps({"conn_type": "mysql", "host": "db", "extra": extra})
    )
    hook = hooks.OutboxDatabaseHook("tls_db")
    assert hook.tls_settings() == {
        "ca": "/ca.pem",
        "cert": "/c.pem",
        "key": "/k.pem",
        "capath": "/cas",
        "cipher": "ECDHE-RSA-AES256-GCM-SHA384",
        "check_hostname": False,
        "verify_mode": True,
    }
    engine, seen = hook.get_engine(), {}

    def capture(dialect: Any, conn_rec: Any, cargs: Any, cparams: dict[str, Any]) -> None:
        seen.update(cparams)
        raise ConnectionAbortedError("captured")  # stop before any network I/O

    event.listen(engine, "do_connect", capture)
    with pytest.raises(Exception, match="captured"):
        engine.connect()
    assert seen["ssl"]["cert"] == "/c.pem" and seen["ssl"]["check_hostname"] is False
    engine.dispose()
    monkeypatch.setenv(
        "AIRFLOW_CONN_TLS_DB",
        json.dumps({"conn_type": "mysql", "host": "db", "extra": {"ssl_check_hostname": "maybe"}}),
    )
    with pytest.raises(
        ValueError, match="connection 'tls_db': extra 'ssl_check_hostname' must be true or false"
    ):
        hooks.OutboxDatabaseHook("tls_db").tls_settings()


@pytest.mark.integration
def test_the_database_hook_tests_its_connection(db_engine: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The Airflow UI's 'Test' button: a real MariaDB answers with its version, a wrong port is reported."""
    good = database_connection(db_engine)
    monkeypatch.setenv("AIRFLOW_CONN_OUTBOX_GOOD", json.dumps(good))
    ok, message = hooks.OutboxDatabaseHook("outbox_good").test_connection()
    assert ok and message.startswith("Connected: server ") and "MariaDB" in message
    monkeypatch.setenv("AIRFLOW_CONN_OUTBOX_BAD", json.dumps({**good, "port": 1}))
    ok, message = hooks.OutboxDatabaseHook("outbox_bad").test_connection()
    assert not ok and "OperationalError" in message
    assert (
        hooks.OutboxDatabaseHook.conn_type == "outbox"
        and hooks.OutboxDatabaseHook.default_conn_name == "outbox_db"
    )


@pytest.mark.integration
def test_airflows_test_button_finds_the_hook_by_the_providers_connection_type(
    db_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the api-server's Test button calls: Airflow's own Connection.test_connection(), which looks the
    hook up by connection type through the providers manager (the package's provider entry point), with the
    form's unsaved connection exported as AIRFLOW_CONN_<id> as the api-server does."""
    from airflow.models.connection import Connection

    form = Connection(conn_id="form_check", **database_connection(db_engine, "outbox"))
    monkeypatch.setenv("AIRFLOW_CONN_FORM_CHECK", form.get_uri())
    ok, message = form.test_connection()
    assert ok and message.startswith("Connected: server "), message
