"""What every scenario's demo shares: where the DB and broker are, reading a topic back, the summary table."""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import make_url


def server_url() -> str:
    return os.environ.get("OUTBOX_TEST_DB_URL", "mysql+pymysql://root@127.0.0.1:3306")


def db_url(database: str | None = None) -> str:
    """URL of the scenario's database (``DEMO_DB``) on the configured server."""
    name = database or os.environ["DEMO_DB"]
    return make_url(server_url()).set(database=name).render_as_string(hide_password=False)


def bootstrap() -> str:
    return os.environ.get("OUTBOX_KAFKA_BOOTSTRAP", "127.0.0.1:19092")


@dataclass
class TopicReadback:
    """Messages of one topic that carry one of the expected message ids."""

    total: int = 0
    per_id: Counter[str] = field(default_factory=Counter)

    @property
    def ids(self) -> set[str]:
        return set(self.per_id)


def topic_records(topic: str, servers: str | None = None, timeout_seconds: float = 60.0) -> list[Any]:
    """Every record of ``topic``, in partition order, read with kafka-python: a second client library, as
    an independent check of what really landed. Reading stops at the first empty poll once every
    partition is at its end offset, instead of after seconds of silence. (The empty poll is for Tansu,
    whose end offset is the last batch's first offset + 1, short of the batch's later records.)"""
    from kafka import KafkaConsumer, TopicPartition

    reader = KafkaConsumer(
        bootstrap_servers=servers or bootstrap(),
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",  # a relay delivering exactly once aborts what it could not finish
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(reader.partitions_for_topic(topic))]
        if not partitions:
            return []
        reader.assign(partitions)
        reader.seek_to_beginning()
        ends: dict[Any, int] = reader.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_seconds
        while True:
            polled = [r for batch in reader.poll(timeout_ms=300).values() for r in batch]
            records += polled
            if not polled and all(reader.position(tp) >= ends[tp] for tp in partitions):
                return sorted(records, key=lambda r: (r.partition, r.offset))
            if time.monotonic() > deadline:
                raise TimeoutError(f"{topic}: not read to its end offsets {ends} in {timeout_seconds}s")
    finally:
        reader.close()


def read_back(topic: str, message_ids: set[str], header: str = "outbox-message-id") -> TopicReadback:
    """Count the messages of ``topic`` that carry one of ``message_ids``, read with :func:`topic_records`."""
    found = TopicReadback()
    for record in topic_records(topic):
        message_id = dict(record.headers or []).get(header, b"").decode()
        if message_id in message_ids:  # the topic may hold earlier demo runs' messages
            found.total += 1
            found.per_id[message_id] += 1
    return found


def print_summary(title: str, table: list[tuple[str, object]]) -> None:
    """The lost/duplicate table every demo ends with (tests parse its two-space-indented lines)."""
    width = max(len(name) for name, _ in table)
    print(f"\n== outbox demo: {title} ==")
    for name, value in table:
        print(f"  {name:<{width}}  {value}")
