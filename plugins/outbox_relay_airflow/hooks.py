"""Airflow connections -> the relay's clients: Kafka through the provider's hooks, MySQL through
``OutboxDatabaseHook``.

The provider hooks own Kafka connection handling (bootstrap servers, TLS, SASL, OAuth callbacks all
come from the connection's extra). The subclasses here only layer the settings the relay's guarantees
depend on over the connection's extra, by overriding ``get_connection`` (per instance, since the settings
are per service; the provider reads the connection through ``self.get_connection``), so a connection
cannot weaken them and the provider builds the client exactly as it would for any other task: callbacks,
Amazon MSK IAM and Google Managed Kafka tokens included. Every hook here finds its connection through
``connections.get_connection``: where Airflow itself would, in a task or in the CLI.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook
from airflow.sdk import BaseHook, Connection
from sqlalchemy import URL, Engine

from outbox_relay.config import ServiceConfig
from outbox_relay.database import make_engine, ping
from outbox_relay.errors import ConfigurationError
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.kafka.records import PRODUCER_REQUIRED, RELAY_PRODUCER
from outbox_relay.kafka.transactions import TransactionalPublisher
from outbox_relay_airflow import connections
from outbox_relay_airflow.provider_info import DATABASE_CONNECTION_TYPE, DATABASE_EXTRA_FIELDS

# Delivery guarantees: not overridable from the connection.
# read_committed: a relay delivering exactly once aborts the transactions of batches it could not finish,
# and their messages must stay unseen (librdkafka's default, written out so a connection cannot change it).
CONSUMER_REQUIRED: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.partition.eof": True,
    "isolation.level": "read_committed",
}
# Consumer defaults a connection may change.
CONSUMER_DEFAULTS: dict[str, Any] = {
    "auto.offset.reset": "earliest",
    "session.timeout.ms": 10_000,
    "heartbeat.interval.ms": 1_000,
}


def producer_settings(config: ServiceConfig) -> dict[str, Any]:
    """The service's producer timing, then the settings its guarantees need (these win)."""
    return {
        "message.timeout.ms": config.kafka.delivery_timeout_ms,
        "linger.ms": config.kafka.linger_ms,
        **RELAY_PRODUCER,
    }


def service_publisher(config: ServiceConfig) -> KafkaPublisher:
    """The publisher every relay, replay and backfill of a service sends with."""
    producer = OutboxProducerHook(config.connections.kafka, producer_settings(config)).get_producer()
    return KafkaPublisher(producer, config.kafka.flush_timeout_seconds)


def transactional_publisher(config: ServiceConfig, transactional_id: str) -> TransactionalPublisher:
    """A producer of ``delivery: exactly_once``: transactional, with the service's transaction timeout."""
    settings = {
        **producer_settings(config),
        "transactional.id": transactional_id,
        "transaction.timeout.ms": config.kafka.transaction_timeout_ms,
    }
    producer = OutboxProducerHook(config.connections.kafka, settings).get_producer()
    return TransactionalPublisher(producer, config.kafka.flush_timeout_seconds, transactional_id)


def progress_reader(config: ServiceConfig) -> Any:
    """A consumer of the progress topic that sees committed records only (assigned, never committing)."""
    group = f"outbox-relay-progress-{config.service}"
    return OutboxConsumerHook(
        [], config.connections.kafka, group, {"isolation.level": "read_committed"}
    ).get_conn


def _with_extra(conn: Connection, under: dict[str, Any], over: dict[str, Any]) -> Connection:
    """A copy of ``conn`` whose extra is ``under`` < the stored extra < ``over``."""
    return connections.copy_of(conn, json.dumps({**under, **conn.extra_dejson, **over}))


class OutboxProducerHook(KafkaProducerHook):
    """``KafkaProducerHook`` whose producer is idempotent with acks=all, whatever the connection says."""

    def __init__(self, kafka_config_id: str, settings: dict[str, Any] | None = None) -> None:
        super().__init__(kafka_config_id=kafka_config_id)
        self.settings = {**(settings or {}), **PRODUCER_REQUIRED}

    def get_connection(self, conn_id: str) -> Connection:  # type: ignore[override]  # per instance: see module doc
        return _with_extra(connections.get_connection(conn_id), {}, self.settings)


class OutboxConsumerHook(KafkaConsumerHook):
    """``KafkaConsumerHook`` in the service's group, with auto-commit off (offsets follow DB commits)."""

    def __init__(
        self,
        topics: Sequence[str],
        kafka_config_id: str,
        group_id: str,
        settings: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(topics=topics, kafka_config_id=kafka_config_id)
        self.required = {"group.id": group_id, **(settings or {}), **CONSUMER_REQUIRED}

    def get_connection(self, conn_id: str) -> Connection:  # type: ignore[override]  # per instance: see module doc
        return _with_extra(connections.get_connection(conn_id), CONSUMER_DEFAULTS, self.required)


class _AdminHook(KafkaAdminClientHook):
    """``KafkaAdminClientHook`` finding its connection where the rest of the glue does."""

    def get_connection(self, conn_id: str) -> Connection:  # type: ignore[override]  # see connections
        return connections.get_connection(conn_id)


def admin_client(kafka_config_id: str) -> Any:
    return _AdminHook(kafka_config_id=kafka_config_id).get_conn


class _LookingAdminHook(KafkaAdminClientHook):
    """``KafkaAdminClientHook`` whose metadata requests never create a topic (a broker with
    ``auto.create.topics.enable`` would otherwise create a confirmation topic just for being asked about)."""

    def get_connection(self, conn_id: str) -> Connection:  # type: ignore[override]  # per instance: see module doc
        return _with_extra(connections.get_connection(conn_id), {}, {"allow.auto.create.topics": False})


def looking_admin_client(kafka_config_id: str) -> Any:
    """An admin client that only reads (the ``@messages`` trigger's lag probe)."""
    return _LookingAdminHook(kafka_config_id=kafka_config_id).get_conn


# Connection extras passed to PyMySQL's TLS settings (through SQLAlchemy's ``ssl`` connect argument).
TLS_EXTRAS = {
    "ssl_ca": "ca",
    "ssl_cert": "cert",
    "ssl_key": "key",
    "ssl_capath": "capath",
    "ssl_cipher": "cipher",
}
TLS_FLAGS = {"ssl_check_hostname": "check_hostname", "ssl_verify_cert": "verify_mode"}


def _flag(conn_id: str, name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"true", "1", "yes"}:
        return True
    if text in {"false", "0", "no"}:
        return False
    raise ConfigurationError(f"connection {conn_id!r}: extra {name!r} must be true or false, got {value!r}")


class OutboxDatabaseHook(BaseHook):
    """The outbox database (MySQL or MariaDB) from an Airflow connection of type ``outbox`` (the
    connection type this package's provider registers, with its own form) or ``mysql``.

    Login, password, host, port and schema (the database) come from the connection; extras: ``charset``
    (default utf8mb4), TLS files ``ssl_ca``, ``ssl_cert``, ``ssl_key``, ``ssl_capath``, ``ssl_cipher`` and
    the switches ``ssl_check_hostname`` / ``ssl_verify_cert`` (true/false). Any TLS extra turns TLS on."""

    conn_name_attr = "outbox_db_conn_id"
    default_conn_name = "outbox_db"
    conn_type = DATABASE_CONNECTION_TYPE
    hook_name = "Outbox database (MySQL / MariaDB)"

    def __init__(self, outbox_db_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.outbox_db_conn_id = outbox_db_conn_id

    def get_connection(self, conn_id: str) -> Connection:  # type: ignore[override]  # see connections
        return connections.get_connection(conn_id)

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """The form's extra fields for Airflow 3.1, which reads them from the hook (3.2+ reads the same
        fields from ``provider_info``; these are then never called)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import BooleanField, StringField

        widgets: dict[str, Any] = {}
        for name, label, kind, default, description in DATABASE_EXTRA_FIELDS:
            if kind == "boolean":
                widgets[name] = BooleanField(lazy_gettext(label), description=description)
            else:
                widgets[name] = StringField(
                    lazy_gettext(label), widget=BS3TextFieldWidget(), description=description, default=default
                )
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Airflow 3.1's form layout (3.2+ reads ``provider_info``)."""
        from outbox_relay_airflow.provider_info import DATABASE_FIELD_BEHAVIOUR

        return {key.replace("-", "_"): value for key, value in DATABASE_FIELD_BEHAVIOUR.items()}

    def sqlalchemy_url(self) -> URL:
        conn = self.get_connection(self.outbox_db_conn_id)
        charset = str((conn.extra_dejson or {}).get("charset") or "utf8mb4")
        return URL.create(
            "mysql+pymysql",
            username=conn.login or None,
            password=conn.password or None,
            host=conn.host or "localhost",
            port=int(conn.port or 3306),
            database=conn.schema or None,
            query={"charset": charset},
        )

    def tls_settings(self) -> dict[str, Any]:
        """PyMySQL's ``ssl`` dict from the connection's TLS extras (empty: no TLS). A file, a cipher list or a
        switch set to true turns TLS on; switches set to false only relax TLS that something else turned
        on (a connection form saves untouched switches as false or null, which must not mean TLS)."""
        extra = self.get_connection(self.outbox_db_conn_id).extra_dejson or {}
        ssl: dict[str, Any] = {key: str(extra[name]) for name, key in TLS_EXTRAS.items() if extra.get(name)}
        flags = {
            key: _flag(self.outbox_db_conn_id, name, extra[name])
            for name, key in TLS_FLAGS.items()
            if extra.get(name) not in (None, "")
        }
        if ssl or any(flags.values()):
            ssl.update(flags)
        return ssl

    def get_engine(self, time_zone: str = "+00:00", pool_size: int = 2, watching: bool = False) -> Engine:
        return make_engine(
            self.sqlalchemy_url(), time_zone, pool_size=pool_size, ssl=self.tls_settings(), watching=watching
        )

    def test_connection(self) -> tuple[bool, str]:
        """The Airflow UI's 'Test' button: connect and ask the server for its version."""
        try:
            engine = self.get_engine(pool_size=1)
            try:
                version = ping(engine)
            finally:
                engine.dispose()
        except Exception as exc:
            return False, f"{type(exc).__name__}: {exc}"
        return True, f"Connected: server {version}"


def sqlalchemy_url(conn_id: str) -> URL:
    return OutboxDatabaseHook(conn_id).sqlalchemy_url()


def db_engine(config: ServiceConfig, pool_size: int = 2) -> Engine:
    return OutboxDatabaseHook(config.connections.db).get_engine(config.db_time_zone, pool_size)
