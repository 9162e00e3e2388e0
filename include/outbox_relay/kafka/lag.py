"""How many messages of a topic a consumer group has not committed yet, read without joining the group.

An event-driven confirmation ingest (``confirm_schedule: "@messages"``) asks this every few seconds from
Airflow's triggerer instead of starting a task every minute: one metadata request, the group's committed
offsets (an OffsetFetch to its coordinator) and each partition's end offset. The client never subscribes,
polls or commits, so the group's members, assignments and offsets are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException, TopicPartition


class OffsetReader(Protocol):
    """The three calls of a confluent-kafka ``Consumer`` that this module uses."""

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...
    def committed(self, partitions: list[TopicPartition], timeout: float = ...) -> list[TopicPartition]: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float = ..., cached: bool = ...
    ) -> tuple[int, int]: ...


@dataclass(frozen=True)
class GroupLag:
    """``waiting``: messages after the group's committed offsets (all retained messages of a partition the
    group never committed on, as the ingest reads from the earliest offset). ``committed``: the committed
    offset per partition (-1: none), which moves when an ingest run made progress."""

    waiting: int
    committed: tuple[int, ...]


def group_lag(client: OffsetReader, topic: str, timeout: float = 10.0) -> GroupLag:
    """The group's lag on ``topic`` (the group is the client's ``group.id``); a topic that does not exist
    yet has nothing waiting. Broker errors raise ``KafkaException``."""
    found = client.list_topics(topic, timeout=timeout).topics.get(topic)
    if found is None or _unknown(found.error):
        return GroupLag(0, ())
    if found.error is not None:
        raise KafkaException(found.error)
    partitions = [TopicPartition(topic, p) for p in sorted(found.partitions)]
    committed = client.committed(partitions, timeout=timeout)
    offsets, waiting = [], 0
    for tp in committed:
        if tp.error is not None:
            raise KafkaException(tp.error)
        low, high = client.get_watermark_offsets(TopicPartition(topic, tp.partition), timeout=timeout)
        offset = tp.offset if tp.offset >= 0 else -1
        waiting += max(0, high - max(offset, low))
        offsets.append(offset)
    return GroupLag(waiting, tuple(offsets))


def _unknown(error: Any) -> bool:
    return error is not None and error.code() in {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}
