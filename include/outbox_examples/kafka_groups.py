"""Start a demo consumer group at the end of a topic that earlier demo runs already filled."""

from __future__ import annotations

from confluent_kafka import Consumer, TopicPartition

from outbox_examples.demo_support import bootstrap


def start_group_at_end(topic: str, group: str) -> int:
    """Commit ``group``'s offsets at the current end of every partition of ``topic`` (if it exists), so
    a fresh demo database is fed only this run's events, not those of earlier runs; returns the
    number of partitions moved."""
    consumer = Consumer({"bootstrap.servers": bootstrap(), "group.id": group, "enable.auto.commit": False})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0  # not created yet: the relay's ensure_topics creates it, the group starts at offset 0
        ends = [
            TopicPartition(topic, p, consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1])
            for p in meta.partitions
        ]
        consumer.commit(offsets=ends, asynchronous=False)
        return len(ends)
    finally:
        consumer.close()
