"""Kafka clients from the provider's hooks and the MySQL engine from an Airflow connection.

The provider hooks own connection handling (bootstrap servers, TLS, SASL, OAuth
callbacks all come from the connection's extra). These subclasses only add the
settings the relay's guarantees depend on, which a connection cannot weaken.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.providers.apache.kafka.hooks.client import KafkaAdminClientHook
from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook
from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook
from airflow.sdk import BaseHook
from confluent_kafka import Consumer, Producer
from sqlalchemy import URL, Engine

from outbox_relay.config import ServiceConfig
from outbox_relay.kafka.messages import PRODUCER_REQUIRED
from outbox_relay.store.engine import make_engine

# Delivery guarantees: not overridable from the connection.
CONSUMER_REQUIRED: dict[str, Any] = {"enable.auto.commit": False, "enable.partition.eof": True}


def producer_settings(config: ServiceConfig) -> dict[str, Any]:
    return {
        **PRODUCER_REQUIRED,
        "message.timeout.ms": config.kafka.delivery_timeout_ms,
        "linger.ms": config.kafka.linger_ms,
    }


class OutboxProducerHook(KafkaProducerHook):
    """``KafkaProducerHook`` with the relay's idempotent, acks=all settings layered on top."""

    def __init__(self, kafka_config_id: str, overrides: dict[str, Any] | None = None) -> None:
        super().__init__(kafka_config_id=kafka_config_id)
        self.overrides = {**(overrides or {}), **PRODUCER_REQUIRED}

    def _get_client(self, config: dict[str, Any]) -> Producer:
        return Producer({**config, **self.overrides})


class OutboxConsumerHook(KafkaConsumerHook):
    """``KafkaConsumerHook`` with auto-commit off and the service's consumer group."""

    def __init__(self, topics: Sequence[str], kafka_config_id: str, group_id: str) -> None:
        super().__init__(topics=topics, kafka_config_id=kafka_config_id)
        self.group_id = group_id

    def _get_client(self, config: dict[str, Any]) -> Consumer:
        settings = {
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            **config,
            "group.id": self.group_id,
            **CONSUMER_REQUIRED,
        }
        return super()._get_client(settings)


def admin_client(kafka_config_id: str) -> Any:
    return KafkaAdminClientHook(kafka_config_id=kafka_config_id).get_conn


def sqlalchemy_url(conn_id: str) -> URL:
    """``mysql+pymysql://`` URL from an Airflow connection (type mysql); extra keys become query options."""
    conn = BaseHook.get_connection(conn_id)
    extra = {
        k: str(v)
        for k, v in (conn.extra_dejson or {}).items()
        if k in {"charset", "ssl_ca", "ssl_cert", "ssl_key"}
    }
    return URL.create(
        "mysql+pymysql",
        username=conn.login or None,
        password=conn.password or None,
        host=conn.host or "localhost",
        port=int(conn.port or 3306),
        database=conn.schema or None,
        query={"charset": "utf8mb4", **extra},
    )


def db_engine(config: ServiceConfig, pool_size: int = 2) -> Engine:
    return make_engine(sqlalchemy_url(config.connections.db), config.db_time_zone, pool_size=pool_size)
