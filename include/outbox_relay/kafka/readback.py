"""Reading a topic back from a point in time to its current end, without a consumer group's offsets:
what an audit needs to see what really landed."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_END, TopicPartition

from outbox_relay.errors import InfrastructureError


@dataclass(frozen=True)
class TopicRecord:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, str]
    value: bytes | None = None
    timestamp_ms: int | None = None


class ReadBackError(InfrastructureError):
    """A topic could not be read to its end in time."""


def read_back(
    consumer: Any,
    topics: Sequence[str],
    since_ms: int,
    timeout_seconds: float = 120,
    clock: Callable[[], float] = time.monotonic,
) -> list[TopicRecord]:
    """Every record of ``topics`` produced at or after ``since_ms`` (epoch milliseconds), up to each
    partition's end as it was when reading began. The consumer is assigned, never subscribed: no group
    offsets are read or committed."""
    todo = _assign_from(consumer, topics, since_ms)
    records: list[TopicRecord] = []
    deadline = clock() + timeout_seconds
    while todo:
        if clock() > deadline:
            raise ReadBackError(f"could not read {sorted(todo)} to their end within {timeout_seconds:g}s")
        for message in consumer.consume(1000, timeout=0.5):
            if message.error() is not None:
                continue
            where = (message.topic(), message.partition())
            headers = {k: (v or b"").decode("utf-8", "replace") for k, v in (message.headers() or [])}
            value, stamp = message.value(), message.timestamp()[1]
            records.append(TopicRecord(*where, message.offset(), message.key(), headers, value, stamp))
            if where in todo and message.offset() + 1 >= todo[where]:
                del todo[where]
    return records


def _assign_from(consumer: Any, topics: Sequence[str], since_ms: int) -> dict[tuple[str, int], int]:
    """Assign every partition at its first offset at or after ``since_ms``; returns the end offset of each
    partition that has something to read."""
    start: list[TopicPartition] = []
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            raise ReadBackError(f"topic {topic!r} cannot be read: {getattr(meta, 'error', 'not found')}")
        start += [TopicPartition(topic, p, since_ms) for p in meta.partitions]
    positions = consumer.offsets_for_times(start, timeout=10) if start else []
    todo: dict[tuple[str, int], int] = {}
    for tp in positions:
        end = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)[1]
        tp.offset = end if tp.offset in (OFFSET_END, -1) else tp.offset
        if tp.offset < end:
            todo[(tp.topic, tp.partition)] = end
    consumer.assign([tp for tp in positions if (tp.topic, tp.partition) in todo])
    return todo
