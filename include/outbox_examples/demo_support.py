"""What every scenario's demo shares: where the DB and broker are, reading a topic back, the summary table."""

from __future__ import annotations

import os
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


def topic_reader(topic: str, servers: str | None = None, idle_ms: int = 4000) -> Any:
    """A kafka-python consumer reading ``topic`` from the start without a group: a second client library,
    as an independent check of what really landed. Iterating it ends after ``idle_ms`` of silence."""
    from kafka import KafkaConsumer

    return KafkaConsumer(
        topic,
        bootstrap_servers=servers or bootstrap(),
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        consumer_timeout_ms=idle_ms,
    )


def read_back(topic: str, message_ids: set[str], header: str = "outbox-message-id") -> TopicReadback:
    """Count the messages of ``topic`` that carry one of ``message_ids``, read with :func:`topic_reader`."""
    reader = topic_reader(topic)
    found = TopicReadback()
    for record in reader:
        message_id = dict(record.headers or []).get(header, b"").decode()
        if message_id in message_ids:  # the topic may hold earlier demo runs' messages
            found.total += 1
            found.per_id[message_id] += 1
    reader.close()
    return found


def print_summary(title: str, table: list[tuple[str, object]]) -> None:
    """The lost/duplicate table every demo ends with (tests parse its two-space-indented lines)."""
    width = max(len(name) for name, _ in table)
    print(f"\n== outbox demo: {title} ==")
    for name, value in table:
        print(f"  {name:<{width}}  {value}")
