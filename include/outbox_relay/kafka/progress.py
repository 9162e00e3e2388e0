"""The Kafka half of exactly-once delivery: progress records on the project's compacted progress topic.

Each batch's Kafka transaction holds its messages and one progress record keyed by service and shard. The
record names the rows of every batch of that relay whose database transaction had not been seen to commit
when the Kafka transaction began (the batch itself, and with pipelining the one before), so the last
committed record alone says what a crashed relay left to mark: compaction keeping only that record loses
nothing. Row ids are written compactly: runs of consecutive integers as ``[first, last]`` pairs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from confluent_kafka import IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import OffsetSpec  # type: ignore[attr-defined]

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import InfrastructureError
from outbox_relay.models import HistoryEntry

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
PROGRESS_PARTITION = 0  # every record goes to partition 0 (the topic is created with one)


class ProgressRecordError(InfrastructureError):
    """A record on the progress topic under one of this relay's keys cannot be read: written by something
    else, or by a newer version. The run stops rather than guess which rows are in Kafka."""


def relay_id(config: ServiceConfig, shard: int | None) -> str:
    """A relay's name on the broker, stable per deployment, service and shard (``all``: the whole table):
    its producer's ``transactional.id`` (the broker fences older producers with the same id) and the key of
    its progress records."""
    return f"{config.kafka.transactional_id_prefix}.{config.service}.{'all' if shard is None else shard}"


def progress_end(admin: Any, topic: str) -> int:
    """The progress partition's end offset as a read-uncommitted client sees it (open transactions
    included): a starting relay reads up to there once every transaction before it has ended."""
    partition = TopicPartition(topic, PROGRESS_PARTITION)
    futures = admin.list_offsets(
        {partition: OffsetSpec.latest()},  # type: ignore[no-untyped-call]
        isolation_level=IsolationLevel.READ_UNCOMMITTED,
        request_timeout=30,
    )
    try:
        return int(next(iter(futures.values())).result().offset)
    except KafkaException as exc:
        raise InfrastructureError(
            f"could not read the end of progress topic {topic}: {exc.args[0]}"
        ) from None


def encode_ids(ids: Sequence[Any]) -> dict[str, Any]:
    """Row ids in a compact, exact form: integer ids as ranges of consecutive values, others as text
    (``bytes`` as hex)."""
    if ids and all(type(i) is int for i in ids):
        ranges: list[list[int]] = []
        for i in sorted(ids):
            if ranges and i == ranges[-1][1] + 1:
                ranges[-1][1] = i
            elif not ranges or i != ranges[-1][1]:
                ranges.append([i, i])
        return {"ranges": ranges}
    if ids and all(isinstance(i, bytes) for i in ids):
        return {"hex": [i.hex() for i in ids]}
    return {"ids": [str(i) for i in ids]}


def decode_ids(document: dict[str, Any]) -> list[Any]:
    if "ranges" in document:
        return [i for first, last in document["ranges"] for i in range(int(first), int(last) + 1)]
    if "hex" in document:
        return [bytes.fromhex(i) for i in document["hex"]]
    return list(document.get("ids", []))


@dataclass(frozen=True)
class BatchRecord:
    """One batch inside a Kafka transaction: the rows whose messages it carries (``sent``), the rows whose
    dead-letter copies it carries (with the error that ended them), and the run that sent it."""

    seq: int
    run_id: str
    sent: tuple[Any, ...]
    dead_lettered: tuple[tuple[Any, str], ...] = ()
    history: HistoryEntry | None = None  # a replay's or a backfill's republish: who asked, why

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"seq": self.seq, "run_id": self.run_id, "sent": encode_ids(self.sent)}
        if self.dead_lettered:
            document["dead_lettered"] = {
                "rows": encode_ids([row for row, _ in self.dead_lettered]),
                "errors": [error for _, error in self.dead_lettered],
            }
        if self.history is not None:
            h = self.history
            document["history"] = {"requested_by": h.requested_by, "reason": h.reason, "run_id": h.run_id}
        return document

    @classmethod
    def from_json(cls, document: dict[str, Any]) -> BatchRecord:
        dead = document.get("dead_lettered")
        dead_lettered = tuple(zip(decode_ids(dead["rows"]), dead["errors"], strict=True)) if dead else ()
        history = document.get("history")
        return cls(
            seq=int(document["seq"]),
            run_id=str(document["run_id"]),
            sent=tuple(decode_ids(document["sent"])),
            dead_lettered=dead_lettered,
            history=None if history is None else HistoryEntry(**history),
        )


@dataclass(frozen=True)
class ProgressRecord:
    """The value of one progress record: the relay's newest batch and the older ones still unrecorded."""

    key: str
    seq: int
    producer: str  # the transactional id that wrote it
    batches: tuple[BatchRecord, ...]

    def encode(self) -> bytes:
        return json.dumps(
            {
                "v": FORMAT_VERSION,
                "key": self.key,
                "seq": self.seq,
                "producer": self.producer,
                "at": time.time(),
                "batches": [b.as_json() for b in self.batches],
            },
            separators=(",", ":"),
        ).encode()

    @classmethod
    def decode(cls, key: str, value: bytes | None, where: str) -> ProgressRecord:
        try:
            document = json.loads(value or b"")
            version = document.get("v")
        except (ValueError, AttributeError) as exc:
            raise _unreadable(key, where, exc) from None
        if version != FORMAT_VERSION:
            raise _unreadable(key, where, f"format version {version!r}, this relay reads {FORMAT_VERSION}")
        try:
            return cls(
                key=key,
                seq=int(document["seq"]),
                producer=str(document.get("producer", "")),
                batches=tuple(BatchRecord.from_json(b) for b in document["batches"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise _unreadable(key, where, exc) from None


def _unreadable(key: str, where: str, why: object) -> ProgressRecordError:
    reason = f"{type(why).__name__}: {why}" if isinstance(why, Exception) else str(why)
    return ProgressRecordError(
        f"progress record under key {key!r} at {where} cannot be read ({reason}); the relay does not know "
        "which rows that transaction carried, so it stops instead of publishing them again"
    )


def _committed_end(consumer: Any, partition: TopicPartition, target: int, deadline: float) -> None:
    """Wait until every transaction that started before ``target`` has ended (the read-committed end of the
    partition reached it): only then can a committed record before ``target`` be read."""
    while True:
        _low, stable = consumer.get_watermark_offsets(partition, timeout=10, cached=False)
        if stable >= target:
            return
        if time.monotonic() >= deadline:
            raise InfrastructureError(
                f"progress topic {partition.topic}: a transaction before offset {target} is still open "
                f"(committed data ends at {stable}); another relay's transaction did not end in time"
            )
        time.sleep(0.1)


def scan_progress(
    consumer: Any,
    topic: str,
    keys: Iterable[str],
    start: int,
    end: int,
    timeout_seconds: float,
) -> dict[str, ProgressRecord]:
    """The newest committed record under each of ``keys`` between offsets ``start`` and ``end`` (the
    partition's end as a read-uncommitted client sees it, taken after this relay fenced its predecessors).
    ``consumer`` reads committed data only (``isolation.level=read_committed``). Reading stops once its
    position reaches ``end``, not at the end-of-partition event, which the broker sends only after
    ``fetch.wait.max.ms``."""
    wanted = set(keys)
    latest: dict[str, ProgressRecord] = {}
    if end <= start:
        return latest
    deadline = time.monotonic() + timeout_seconds
    partition = TopicPartition(topic, PROGRESS_PARTITION)
    _committed_end(consumer, partition, end, deadline)
    consumer.assign([TopicPartition(topic, PROGRESS_PARTITION, start)])
    try:
        for message in _committed_records(consumer, partition, end, deadline):
            key = (message.key() or b"").decode("utf-8", "replace")
            if key in wanted:
                record = ProgressRecord.decode(key, message.value(), f"{topic} offset {message.offset()}")
                if key not in latest or record.seq > latest[key].seq:
                    latest[key] = record
    finally:
        consumer.unassign()
    return latest


def _committed_records(consumer: Any, partition: TopicPartition, end: int, deadline: float) -> Iterator[Any]:
    """The assigned partition's committed records up to ``end`` (its end, or past the control records
    there)."""
    while True:
        message = consumer.poll(0.1)
        if message is None:
            if consumer.position([partition])[0].offset >= end:
                return
            if time.monotonic() >= deadline:
                raise InfrastructureError(
                    f"progress topic {partition.topic}: could not read up to offset {end} in time"
                )
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                return
            raise InfrastructureError(f"progress topic {partition.topic}: {error.name()}: {error.str()}")
        yield message
        if message.offset() >= end - 1:
            return
