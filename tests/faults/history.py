"""The history checker: what the broker holds versus what the outbox (and the consumers' inbox) say.

Every message of the relayed topics is read back from the broker (message id header, key, partition,
offset) with kafka-python, a client independent of the relay's, and compared with the outbox table.
Optionally a real ``IdempotentConsumer`` with the inbox table is run over the topics twice, and the
effects it wrote to a business table are counted, so "duplicate business effects" is measured, not
assumed.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from sqlalchemy import Connection, Engine, text

from outbox_inbox.consumer import IdempotentConsumer, InboundMessage
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.kafka.records import HEADER_MESSAGE_ID
from tests.integration.kafka_tools import Record, create_topics, producer, read_all

EFFECTS_TABLE = "fault_effect"
PUBLISHED = frozenset({"SENT", "CONFIRMED"})
TERMINAL = frozenset({"CONFIRMED", "FAILED"})


@dataclass(frozen=True)
class History:
    """The checker's figures for one scenario; the Guarantees table of docs/semantics.md quotes them."""

    rows: int  # outbox rows the checker saw
    published_messages: int  # broker records carrying one of those rows' message ids
    distinct_published: int
    lost: int  # committed row never published and not FAILED
    duplicates_published: int  # records beyond the first per message id
    duplicate_effects: int | None  # business effects beyond one per message id (None: not measured)
    missing_effects: int | None  # published ids the consumer never applied (None: not measured)
    order_violations: int  # per key, a message first seen after a newer message of the same key
    sent_without_ack: int  # marked SENT/CONFIRMED but not on the broker
    stuck: int  # rows still NEW (non-terminal) after the scenario converged
    failed: int  # rows ended FAILED

    def figures(self) -> dict[str, Any]:
        return asdict(self)

    def assert_converged(self, max_duplicates: int = 0) -> None:
        """The invariants every scenario must end with."""
        figures = self.figures()
        assert self.lost == 0, figures
        assert self.sent_without_ack == 0, figures
        assert self.order_violations == 0, figures
        assert self.stuck == 0, figures
        assert self.duplicates_published <= max_duplicates, figures
        assert self.duplicate_effects in (None, 0), figures
        assert self.missing_effects in (None, 0), figures


def key_order_violations(records: Sequence[Record], row_id_of: dict[str, int]) -> list[str]:
    """The checker's own per-key order check, written apart from the product's (``outbox_relay.audit``)
    so that a bug there cannot hide a reordering here.

    Per key, the messages in the order they first appear on the broker (offset order of the key's one
    partition; a later copy of a message is a duplicate, not a reordering) must follow the row id order of
    that key's rows. Returns the message ids that break it: each message first seen after a message of a
    higher row id of its key, and the first message of every further (topic, partition) a key was spread
    over (messages of one key on two partitions have no order at all). Records without a key are not
    ordered and records of unknown message ids are not checked."""
    by_key: dict[str, list[Record]] = defaultdict(list)
    for record in records:
        if record.key is not None and record.headers.get(HEADER_MESSAGE_ID) in row_id_of:
            by_key[record.key].append(record)
    violations: list[str] = []
    for group in by_key.values():
        by_partition: dict[tuple[str, int], list[Record]] = defaultdict(list)
        for record in group:
            by_partition[(record.topic, record.partition)].append(record)
        places = sorted(by_partition)
        for extra in places[1:]:
            violations.append(min(by_partition[extra], key=lambda r: r.offset).headers[HEADER_MESSAGE_ID])
        for place in places:
            seen: set[str] = set()
            highest_row_id = None
            for record in sorted(by_partition[place], key=lambda r: r.offset):
                message_id = record.headers[HEADER_MESSAGE_ID]
                if message_id in seen:
                    continue
                seen.add(message_id)
                row_id = row_id_of[message_id]
                if highest_row_id is not None and row_id < highest_row_id:
                    violations.append(message_id)
                else:
                    highest_row_id = row_id
    return violations


def broker_records(topics: Sequence[str], bootstrap: str) -> list[Record]:
    records: list[Record] = []
    for topic in topics:
        records += read_all(topic, bootstrap=bootstrap)
    return records


def high_watermarks(topics: Sequence[str], bootstrap: str) -> int:
    """How many records the broker holds for ``topics`` (sum of high watermarks); cheap to poll."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"wm-{uuid.uuid4().hex}"})
    try:
        total = 0
        for topic in topics:
            for p in consumer.list_topics(topic, timeout=10).topics[topic].partitions:
                total += consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1]
        return total
    finally:
        consumer.close()


def check_history(
    engine: Engine,
    topics: Sequence[str],
    bootstrap: str,
    table: str = "outbox_message",
    consume: bool = False,
) -> History:
    """Compare the broker's records of ``topics`` with the outbox table (standard columns)."""
    with engine.connect() as conn:
        rows = conn.execute(text(f"SELECT id, message_id, status FROM `{table}`")).all()
    row_of = {str(r[1]): int(r[0]) for r in rows}
    status_of = {str(r[1]): str(r[2]) for r in rows}
    records = [r for r in broker_records(topics, bootstrap) if r.headers.get(HEADER_MESSAGE_ID) in row_of]
    on_broker = {r.headers[HEADER_MESSAGE_ID] for r in records}
    duplicate_effects = missing_effects = None
    if consume:
        effects = consume_twice(engine, topics, bootstrap)
        duplicate_effects = sum(n - 1 for n in effects.values() if n > 1)
        missing_effects = len(on_broker - set(effects))
    return History(
        rows=len(rows),
        published_messages=len(records),
        distinct_published=len(on_broker),
        lost=sum(1 for mid, s in status_of.items() if s != "FAILED" and mid not in on_broker),
        duplicates_published=len(records) - len(on_broker),
        duplicate_effects=duplicate_effects,
        missing_effects=missing_effects,
        order_violations=len(key_order_violations(records, row_of)),
        sent_without_ack=sum(1 for mid, s in status_of.items() if s in PUBLISHED and mid not in on_broker),
        stuck=sum(1 for s in status_of.values() if s == "NEW"),
        failed=sum(1 for s in status_of.values() if s == "FAILED"),
    )


def _apply(conn: Connection, message: InboundMessage) -> None:
    """The business effect: one row per application, deliberately without a unique key."""
    conn.execute(text(f"INSERT INTO {EFFECTS_TABLE} (message_id) VALUES (:m)"), {"m": message.message_id})


def _assigned_consumer(topics: Sequence[str], bootstrap: str) -> Consumer:
    """A consumer reading every partition from the start (assign, no group join: fast on Tansu)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"history-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",  # never what a relay's aborted transaction left
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    partitions = []
    for topic in topics:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.partitions]
    consumer.assign(partitions)
    return consumer


def consume_twice(engine: Engine, topics: Sequence[str], bootstrap: str) -> dict[str, int]:
    """Run the idempotent consumer over every message twice; returns effects per message id."""
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE IF NOT EXISTS {EFFECTS_TABLE} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                "message_id VARCHAR(191) NOT NULL)"
            )
        )
    answers = f"history.answers.{uuid.uuid4().hex[:8]}"
    create_topics(answers, partitions=1, bootstrap=bootstrap)
    results = KafkaPublisher(producer(bootstrap), 10)
    for _ in range(2):  # the second pass redelivers everything: the inbox must absorb it
        consumer = _assigned_consumer(topics, bootstrap)
        try:
            IdempotentConsumer("history", engine, consumer, results, answers, _apply).run(
                120,
                idle_seconds=30,
                stop_at_end=True,  # read to the end: no silence window to guess
            )
        finally:
            consumer.close()
    with engine.connect() as conn:
        counts = conn.execute(text(f"SELECT message_id, COUNT(*) FROM {EFFECTS_TABLE} GROUP BY message_id"))
        return {str(m): int(n) for m, n in counts}
