"""``group_lag`` against a fake admin client: what counts as waiting, and what is an error (the real
broker's side is in tests/integration/test_group_lag.py)."""

from __future__ import annotations

from concurrent.futures import Future
from types import SimpleNamespace
from typing import Any

import pytest
from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition

from outbox_relay.kafka.lag import _EARLIEST, GroupLag, group_lag


def _done(value: Any) -> Future[Any]:
    future: Future[Any] = Future()
    future.set_result(value)
    return future


class FakeAdmin:
    """Partition -> (first, end) offsets; partition -> committed offset; a topic error (a string: no such
    topic in the metadata at all); a committed-offset error."""

    def __init__(
        self,
        marks: dict[int, tuple[int, int]],
        committed: dict[int, int],
        error: Any = None,
        offset_error: Any = None,
    ) -> None:
        self.marks, self.offsets, self.error, self.offset_error = marks, committed, error, offset_error
        self.groups: list[str] = []
        self.asked: list[tuple[str, list[int]]] = []  # (earliest | latest, partitions) per ListOffsets

    def list_topics(self, topic: str | None = None, timeout: float = -1) -> Any:
        found = SimpleNamespace(partitions=dict.fromkeys(self.marks), error=self.error)
        return SimpleNamespace(topics={} if isinstance(self.error, str) else {topic: found})

    def list_consumer_group_offsets(
        self, request: list[ConsumerGroupTopicPartitions], **kwargs: Any
    ) -> dict[str, Future[Any]]:
        (asked,) = request
        self.groups.append(asked.group_id)
        partitions = [
            SimpleNamespace(
                partition=tp.partition, offset=self.offsets.get(tp.partition, -1001), error=self.offset_error
            )
            for tp in asked.topic_partitions
        ]
        return {asked.group_id: _done(SimpleNamespace(topic_partitions=partitions))}

    def list_offsets(
        self, wanted: dict[TopicPartition, Any], **kwargs: Any
    ) -> dict[TopicPartition, Future[Any]]:
        side = 0 if next(iter(wanted.values())) is _EARLIEST else 1
        self.asked.append((("earliest", "latest")[side], sorted(tp.partition for tp in wanted)))
        return {tp: _done(SimpleNamespace(offset=self.marks[tp.partition][side])) for tp in wanted}


def test_waiting_counts_messages_after_the_committed_offsets_or_every_retained_one_without_a_commit() -> None:
    admin = FakeAdmin({0: (0, 10), 1: (5, 8), 2: (0, 4)}, {0: 7, 2: 4})
    assert group_lag(admin, "ingest-a", "acks") == GroupLag(waiting=3 + 3 + 0, committed=(7, -1, 4))
    assert admin.groups == ["ingest-a"]  # the group is named per call: one client serves every service


def test_a_committed_offset_below_the_retained_start_counts_only_retained_messages() -> None:
    assert group_lag(FakeAdmin({0: (50, 60)}, {0: 20}), "g", "acks").waiting == 10


def test_a_caught_up_group_has_nothing_waiting_and_a_missing_topic_neither() -> None:
    assert group_lag(FakeAdmin({0: (0, 3)}, {0: 3}), "g", "acks") == GroupLag(0, (3,))
    assert group_lag(FakeAdmin({}, {}, error="absent"), "g", "acks") == GroupLag(0, ())
    unknown = KafkaError(KafkaError.UNKNOWN_TOPIC_OR_PART)
    assert group_lag(FakeAdmin({}, {}, error=unknown), "g", "acks") == GroupLag(0, ())


def test_other_broker_errors_are_raised() -> None:
    denied = KafkaError(KafkaError.TOPIC_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        group_lag(FakeAdmin({0: (0, 1)}, {}, error=denied), "g", "acks")
    group_denied = KafkaError(KafkaError.GROUP_AUTHORIZATION_FAILED)
    with pytest.raises(KafkaException):
        group_lag(FakeAdmin({0: (0, 1)}, {}, offset_error=group_denied), "g", "acks")


def test_first_offsets_are_asked_only_for_partitions_whose_end_is_past_the_committed_offset() -> None:
    """An idle group (the usual look) costs no earliest-offsets request; the others ask only what counts."""
    idle = FakeAdmin({0: (0, 3), 1: (2, 9)}, {0: 3, 1: 9})
    assert group_lag(idle, "g", "acks") == GroupLag(0, (3, 9))
    assert idle.asked == [("latest", [0, 1])]
    busy = FakeAdmin({0: (0, 3), 1: (6, 9), 2: (0, 5)}, {0: 3, 1: 4})
    assert group_lag(busy, "g", "acks") == GroupLag(3 + 5, (3, 4, -1))
    assert busy.asked == [("latest", [0, 1, 2]), ("earliest", [1, 2])]
