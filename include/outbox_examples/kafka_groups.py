"""Move a demo consumer group past what earlier demo runs left on a topic."""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Consumer, KafkaError

from outbox_examples.demo_support import bootstrap
from outbox_relay.kafka.consume import commit_offsets


def group_consumer(group: str, *topics: str, **overrides: Any) -> Consumer:
    """A manually committing group member; with these timeouts the broker's group join takes ~3 s."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(),
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
            **overrides,
        }
    )
    if topics:
        consumer.subscribe(list(topics))
    return consumer


def skip_to_end(topic: str, group: str, timeout_seconds: float = 60) -> int:
    """Read ``group``'s backlog on ``topic`` up to the end of every partition, without processing it,
    and commit: a fresh demo database is then fed only this run's messages. Returns the messages skipped.

    The group itself reads to end-of-partition because the broker's reported high watermark can lag
    the last batch, so committing "the watermark" would replay part of an earlier run.
    """
    consumer = group_consumer(group, **{"enable.partition.eof": True})
    try:
        meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
        if meta is None or meta.error is not None:
            return 0  # not created yet: the relay's ensure_topics creates it, the group starts at 0
        consumer.subscribe([topic])
        skipped, at_end, deadline = 0, set(), time.monotonic() + timeout_seconds
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None:
                continue
            error = message.error()
            if error is None:
                skipped += 1
                at_end.discard(message.partition())
            elif error.code() == KafkaError._PARTITION_EOF:
                at_end.add(message.partition())
                assigned = {tp.partition for tp in consumer.assignment()}
                if assigned and assigned <= at_end:
                    break
        else:
            raise TimeoutError(f"group {group} did not reach the end of {topic} in {timeout_seconds:g}s")
        commit_offsets(consumer)
        return skipped
    finally:
        consumer.close()
