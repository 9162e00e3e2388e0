"""``group_lag`` against a fake client: what counts as waiting, and what is an error (the real broker's
side is in tests/integration/test_group_lag.py)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from outbox_relay.kafka.lag import GroupLag, group_lag


class FakeClient:
    def __init__(self, marks: dict[int, tuple[int, int]], committed: dict[int, int], error: Any = None):
        self.marks, self.offsets, self.error = marks, committed, error

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        found = SimpleNamespace(partitions=dict.fromkeys(self.marks), error=self.error)
        return SimpleNamespace(topics={} if isinstance(self.error, str) else {topic: found})

    def committed(self, partitions: list[TopicPartition], timeout: float = -1) -> list[TopicPartition]:
        return [
            TopicPartition(tp.topic, tp.partition, self.offsets.get(tp.partition, -1001)) for tp in partitions
        ]

    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = -1, cached: bool = False
    ) -> Any:
        return self.marks[partition.partition]


def test_waiting_counts_messages_after_the_committed_offsets_or_every_retained_one_without_a_commit() -> None:
    client = FakeClient({0: (0, 10), 1: (5, 8), 2: (0, 4)}, {0: 7, 2: 4})
    assert group_lag(client, "acks") == GroupLag(waiting=3 + 3 + 0, committed=(7, -1, 4))


def test_a_committed_offset_below_the_retained_start_counts_only_retained_messages() -> None:
    assert group_lag(FakeClient({0: (50, 60)}, {0: 20}), "acks").waiting == 10


def test_a_caught_up_group_has_nothing_waiting_and_a_missing_topic_neither() -> None:
    assert group_lag(FakeClient({0: (0, 3)}, {0: 3}), "acks") == GroupLag(0, (3,))
    assert group_lag(FakeClient({}, {}, error="absent"), "acks") == GroupLag(0, ())
    unknown = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
    assert group_lag(FakeClient({}, {}, error=unknown), "acks") == GroupLag(0, ())


def test_other_broker_errors_are_raised() -> None:
    denied = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        group_lag(FakeClient({0: (0, 1)}, {}, error=denied), "acks")
