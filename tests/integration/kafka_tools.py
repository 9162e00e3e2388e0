"""Broker helpers for integration tests. Reading back uses kafka-python, a second client library,
so what the relay (confluent-kafka) reports is checked independently."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from outbox_examples.demo_support import topic_records
from outbox_relay.kafka.records import RELAY_PRODUCER
from outbox_relay.kafka.topics import wait_for_leaders
from tests.stack import BOOTSTRAP


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    value: bytes
    headers: dict[str, str]


def create_topics(
    *names: str, partitions: int = 3, bootstrap: str = BOOTSTRAP, config: dict[str, str] | None = None
) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics(
        [NewTopic(n, num_partitions=partitions, replication_factor=1, config=config or {}) for n in names]
    )
    for future in futures.values():
        future.result(timeout=10)
    wait_for_leaders(admin, dict.fromkeys(names, partitions))


def producer(bootstrap: str = BOOTSTRAP, **overrides: Any) -> Producer:
    """A producer set up as the relay's are (failure reports only)."""
    return Producer({"bootstrap.servers": bootstrap, **RELAY_PRODUCER, "linger.ms": 5, **overrides})


def read_all(topic: str, bootstrap: str = BOOTSTRAP) -> list[Record]:
    """Every record of ``topic`` up to its end offsets now, in partition order."""
    return [
        Record(
            r.topic,
            r.partition,
            r.offset,
            None if r.key is None else r.key.decode(),
            r.value,
            {k: v.decode() for k, v in (r.headers or [])},
        )
        for r in topic_records(topic, bootstrap)
    ]


def send(
    topic: str, values: list[tuple[str | None, bytes | None]], bootstrap: str = BOOTSTRAP, **overrides: Any
) -> None:
    p = producer(bootstrap, **overrides)
    for key, value in values:
        p.produce(topic, key=None if key is None else key.encode(), value=value)
    assert p.flush(10) == 0
