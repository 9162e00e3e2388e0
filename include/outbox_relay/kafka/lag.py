"""How many messages of a topic a consumer group has not committed yet, read without joining the group.

An event-driven confirmation ingest (``confirm_schedule: "@messages"``) asks this every few seconds from
Airflow's triggerer instead of starting a task every minute: one metadata request, the group's committed
offsets (an OffsetFetch to its coordinator), each partition's end offset and, only where the end is past
the committed offset, its first offset (ListOffsets), all through an admin client: an idle group costs
three requests per look. It never subscribes, polls or commits, so the group's members, assignments and
offsets are untouched; and it names the group per call, so one client serves every service of a Kafka
connection.
"""

from __future__ import annotations

from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]  # exported, not declared

_EARLIEST = OffsetSpec.earliest()  # type: ignore[no-untyped-call]  # confluent-kafka is untyped here
_LATEST = OffsetSpec.latest()  # type: ignore[no-untyped-call]


class LagReader(Protocol):
    """The three calls of a confluent-kafka ``AdminClient`` that this module uses."""

    def list_topics(self, topic: str | None = ..., timeout: float = ...) -> Any: ...
    def list_consumer_group_offsets(
        self, list_consumer_group_offsets_request: list[ConsumerGroupTopicPartitions], **kwargs: Any
    ) -> dict[str, Future[Any]]: ...
    def list_offsets(
        self, topic_partition_offsets: dict[TopicPartition, OffsetSpec], **kwargs: Any
    ) -> dict[TopicPartition, Future[Any]]: ...


@dataclass(frozen=True)
class GroupLag:
    """``waiting``: messages after the group's committed offsets (all retained messages of a partition the
    group never committed on, as the ingest reads from the earliest offset). ``committed``: the committed
    offset per partition (-1: none), which moves when an ingest run made progress."""

    waiting: int
    committed: tuple[int, ...]


def group_lag(admin: LagReader, group: str, topic: str, timeout: float = 10.0) -> GroupLag:
    """The lag of ``group`` on ``topic``; a topic that does not exist yet has nothing waiting. Broker
    errors raise ``KafkaException``."""
    found = admin.list_topics(topic, timeout=timeout).topics.get(topic)
    if found is None or _unknown(found.error):
        return GroupLag(0, ())
    if found.error is not None:
        raise KafkaException(found.error)
    partitions = [TopicPartition(topic, p) for p in sorted(found.partitions)]
    if not partitions:
        return GroupLag(0, ())
    request = [ConsumerGroupTopicPartitions(group, partitions)]
    listed = admin.list_consumer_group_offsets(request, request_timeout=timeout)[group].result()
    committed = {tp.partition: tp for tp in listed.topic_partitions}
    offsets: dict[int, int] = {}
    for tp in partitions:
        mark = committed.get(tp.partition)
        if mark is not None and mark.error is not None:
            raise KafkaException(mark.error)
        offsets[tp.partition] = mark.offset if mark is not None and mark.offset >= 0 else -1
    end = _offsets(admin, partitions, _LATEST, timeout)
    # A partition's earliest offset only matters where its end is past the committed offset (a group
    # never committed, or behind retention): an idle group costs one request less per look.
    behind = [tp for tp in partitions if end[tp.partition] > offsets[tp.partition]]
    first = _offsets(admin, behind, _EARLIEST, timeout) if behind else {}
    waiting = sum(max(0, end[p] - max(offsets[p], first[p])) for p in first)
    return GroupLag(waiting, tuple(offsets.values()))


def _offsets(
    admin: LagReader, partitions: list[TopicPartition], spec: OffsetSpec, timeout: float
) -> dict[int, int]:
    """Partition -> its offset of ``spec`` (earliest or latest)."""
    futures = admin.list_offsets(dict.fromkeys(partitions, spec), request_timeout=timeout)
    return {tp.partition: future.result().offset for tp, future in futures.items()}


def _unknown(error: Any) -> bool:
    return error is not None and error.code() in {KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC}
