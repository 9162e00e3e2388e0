"""Relay settings that are not about the table: connections, retries, producer timing."""

from __future__ import annotations

from pydantic import Field, field_validator

from outbox_relay.config.fields import Strict, check_topic
from outbox_relay.config.identifiers import TableNameField


class Connections(Strict):
    """Airflow connection ids; the relay never reads credentials from YAML."""

    db: str = Field("outbox_db", description="Airflow connection id of the MySQL database (mysql type).")
    kafka: str = Field("kafka_default", description="Airflow connection id of Kafka (kafka type).")


class Inbox(Strict):
    """A consumer's inbox table (written by ``outbox_inbox.IdempotentConsumer``), shown read-only on the
    Outbox page: what it processed, the redeliveries it skipped, when it last saw a message."""

    consumer: str = Field(
        min_length=1,
        max_length=100,
        description="The consumer's name, as its `IdempotentConsumer` writes it (`inbox_message.consumer`).",
    )
    table: TableNameField = Field(
        "inbox_message",
        validate_default=True,
        description="Its inbox table. Redeliveries it skipped are counted in `inbox_duplicate` (created with "
        "the inbox by `outbox-relay ddl --inbox --apply`).",
    )
    db: str | None = Field(
        None,
        description="Airflow connection id of the inbox's database, when the consumer keeps it elsewhere; "
        "`null`: `connections.db`.",
    )


class Retry(Strict):
    max_attempts: int = Field(5, ge=1, le=1000, description="Attempts before a row becomes `failed`.")
    backoff_seconds: float = Field(10, ge=0, description="First retry delay; doubles per attempt.")
    max_backoff_seconds: float = Field(3600, ge=0, description="Upper bound of the retry delay.")


class Kafka(Strict):
    """Producer timing; everything else (servers, TLS, SASL) comes from the Airflow connection."""

    delivery_timeout_ms: int = Field(30_000, ge=1000, description="librdkafka `message.timeout.ms`.")
    flush_timeout_seconds: float = Field(45, gt=0, description="Longest wait for a batch's delivery reports.")
    linger_ms: int = Field(
        50,
        ge=0,
        le=10_000,
        description="librdkafka `linger.ms`: how long messages gather into one request while a batch is being "
        "produced. The relay flushes at the end of every batch, which sends at once whatever lingers, so a "
        "longer linger costs no latency there and fewer, larger requests save CPU (about 3 us per message "
        "at 50 against 5).",
    )
    partitions: int = Field(3, ge=1, le=10_000, description="Partitions for topics the relay creates.")
    replication_factor: int = Field(
        1, ge=1, le=10, description="Replication factor for topics the relay creates."
    )
    transaction_timeout_ms: int = Field(
        60_000,
        ge=1000,
        le=900_000,
        description="With `delivery: exactly_once`: librdkafka `transaction.timeout.ms`, how long the broker "
        "lets a relay's open transaction live before aborting it (a relay that stalls longer is fenced).",
    )
    progress_topic: str = Field(
        "outbox-relay.progress",
        description="With `delivery: exactly_once`: the compacted topic (one partition) of the relays' "
        "progress records, shared by every service; created with the service's topics.",
    )
    transactional_id_prefix: str = Field(
        "outbox-relay",
        min_length=1,
        max_length=100,
        description="With `delivery: exactly_once`: producers' `transactional.id` is "
        "`<prefix>.<service>.<shard or all>`; two deployments on one cluster need different prefixes.",
    )

    @field_validator("progress_topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        check_topic(value)
        return value
