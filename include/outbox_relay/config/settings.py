"""Relay settings that are not about the table: connections, retries, producer timing."""

from __future__ import annotations

from pydantic import Field

from outbox_relay.config.fields import Strict


class Connections(Strict):
    """Airflow connection ids; the relay never reads credentials from YAML."""

    db: str = Field("outbox_db", description="Airflow connection id of the MySQL database (mysql type).")
    kafka: str = Field("kafka_default", description="Airflow connection id of Kafka (kafka type).")


class Retry(Strict):
    max_attempts: int = Field(5, ge=1, le=1000, description="Attempts before a row becomes FAILED.")
    backoff_seconds: float = Field(10, ge=0, description="First retry delay; doubles per attempt.")
    max_backoff_seconds: float = Field(3600, ge=0)


class Kafka(Strict):
    """Producer timing; everything else (servers, TLS, SASL) comes from the Airflow connection."""

    delivery_timeout_ms: int = Field(30_000, ge=1000, description="librdkafka message.timeout.ms.")
    flush_timeout_seconds: float = Field(45, gt=0, description="Longest wait for delivery reports.")
    linger_ms: int = Field(5, ge=0, le=10_000)
    partitions: int = Field(3, ge=1, le=10_000, description="Partitions for topics the relay creates.")
    replication_factor: int = Field(1, ge=1, le=10)
