"""Scenario 7: confirmations delivered three times, out of order, before the SENT update, for unknown
ids, and malformed. The outbox must end exactly as after one clean, in-order delivery."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import OFFSET_STORED, Consumer, TopicPartition
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.confirmations import ConfirmationIngester
from outbox_relay.models import OutboxRow
from outbox_relay.store.outbox import OutboxStore
from tests.faults.conftest import Broker
from tests.faults.support import service
from tests.integration.kafka_tools import create_topics, send
from tests.integration.outbox_rows import insert_rows, run_relay, statuses

pytestmark = pytest.mark.integration

OUTCOMES = ["SUCCESS", "FAILED", "SUCCESS", "SUCCESS", "FAILED", None]  # None: the consumer never answers


def _answer(mid: str, status: str) -> tuple[str, bytes]:
    error = f"insufficient stock for {mid}" if status == "FAILED" else None
    return mid, json.dumps({"message_id": mid, "status": status, "error": error}).encode()


def _ingest(config: ServiceConfig, engine: Engine, bootstrap: str, group: str) -> dict[str, Any]:
    """One confirmations run (assign + the group's stored offsets: no slow group join on Tansu)."""
    assert config.confirmation is not None
    topic = config.confirmation.topic
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_STORED) for p in partitions])
    try:
        return ConfirmationIngester(config, engine, consumer).run(60, idle_seconds=3).as_dict()
    finally:
        consumer.close()


def _final_state(engine: Engine, table: str) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT message_id, status, last_error, confirmed_at IS NULL, attempts FROM {table}")
        )
        return {str(r[0]): tuple(r[1:]) for r in rows}


def test_chaotic_confirmations_end_in_the_state_of_one_clean_delivery(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    caplog: pytest.LogCaptureFixture,
    record_figures: Callable[..., None],
) -> None:
    events, clean_topic, chaos_topic = topic_name("ev"), topic_name("clean"), topic_name("chaos")
    create_topics(events, clean_topic, bootstrap=broker.bootstrap)
    # Kafka refuses a message over 1 MB unless the topic allows it; the chaos includes a 10 MB one.
    create_topics(chaos_topic, bootstrap=broker.bootstrap, config={"max.message.bytes": "11000000"})
    ids = insert_rows(db_engine, events, [f"k{i}" for i in range(len(OUTCOMES))])
    chaos = service(events, confirmation={"topic": chaos_topic, "partitions": 3})
    run_relay(chaos, db_engine, bootstrap=broker.bootstrap)
    with db_engine.begin() as conn:  # the reference: an identical table fed one clean delivery
        conn.execute(text("CREATE TABLE outbox_clean LIKE outbox_message"))
        conn.execute(text("INSERT INTO outbox_clean SELECT * FROM outbox_message"))
        # ids[3]: its confirmation arrives before the relay's SENT update committed
        conn.execute(text("UPDATE outbox_message SET status = 'NEW' WHERE message_id = :m"), {"m": ids[3]})
    clean = service(events, table="outbox_clean", confirmation={"topic": clean_topic})

    answers = [_answer(mid, status) for mid, status in zip(ids, OUTCOMES, strict=True) if status]
    send(clean_topic, answers, bootstrap=broker.bootstrap)
    malformed: list[tuple[str | None, bytes | None]] = [
        (None, b"\xff\xfe not utf-8"),
        (None, b"not json"),
        (None, b'{"status": "SUCCESS"}'),  # no message id anywhere
        (None, b"x" * 10_000_000),  # 10 MB
    ]
    unknown = [_answer(str(uuid.uuid4()), "SUCCESS") for _ in range(2)]
    chaotic: list[tuple[str | None, bytes | None]] = [*answers * 3, *malformed, *unknown]
    random.Random(7).shuffle(chaotic)
    send(chaos_topic, chaotic, bootstrap=broker.bootstrap, **{"message.max.bytes": 11_000_000})

    reference = _ingest(clean, db_engine, broker.bootstrap, "clean-" + uuid.uuid4().hex)
    group = "chaos-" + uuid.uuid4().hex
    stats = _ingest(chaos, db_engine, broker.bootstrap, group)
    # The relay's late SENT update must not overwrite the CONFIRMED its early confirmation set.
    late = OutboxRow(None, ids[3], None, None, None, None, None, "NEW")
    with db_engine.begin() as conn:
        late.row_id = conn.execute(
            text("SELECT id FROM outbox_message WHERE message_id = :m"), {"m": ids[3]}
        ).scalar()
        OutboxStore(chaos).mark_sent(conn, [late], "late-run")

    assert _final_state(db_engine, "outbox_message") == _final_state(db_engine, "outbox_clean")
    assert statuses(db_engine)[ids[5]] == "SENT"  # never answered: still waiting, not touched
    assert stats["malformed"] == len(malformed) and stats["unknown"] == len(unknown)
    assert stats["confirmed"] == reference["confirmed"] == 3 and stats["failed"] == reference["failed"] == 2
    assert sum("skipping malformed confirmation" in r.getMessage() for r in caplog.records) == len(malformed)
    again = _ingest(chaos, db_engine, broker.bootstrap, group)
    assert again["messages"] == 0  # offsets advanced past everything, malformed included
    replay = _ingest(chaos, db_engine, broker.bootstrap, "replay-" + uuid.uuid4().hex)
    assert replay["messages"] == len(chaotic) and replay["confirmed"] == replay["failed"] == 0
    assert _final_state(db_engine, "outbox_message") == _final_state(db_engine, "outbox_clean")
    record_figures(
        {
            "confirmation_messages": stats["messages"],
            "malformed_skipped": stats["malformed"],
            "unknown_ids": stats["unknown"],
            "state_differences_vs_clean_delivery": 0,
            "messages_after_rerun_same_group": again["messages"],
        }
    )
