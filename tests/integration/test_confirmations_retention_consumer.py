"""Confirmation ingestion, retention and the consumer library, against MariaDB and the broker."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer
from sqlalchemy import Connection, Engine, text

from outbox_inbox.consumer import IdempotentConsumer, InboundMessage
from outbox_relay.config import ServiceConfig
from outbox_relay.config.settings import Inbox
from outbox_relay.confirmations import ConfirmationIngester
from outbox_relay.inbox_view import InboxView
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.retention import RetentionCleaner
from tests.conftest import BOOTSTRAP
from tests.integration.kafka_tools import create_topics, producer, read_all, send
from tests.integration.outbox_rows import insert_rows, run_relay, statuses

pytestmark = pytest.mark.integration


def _consumer(topic: str, group: str) -> Consumer:
    c = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    c.subscribe([topic])
    return c


def _answer(mid: str, status: str, error: str | None = None) -> tuple[str, bytes]:
    return mid, json.dumps({"message_id": mid, "status": status, "error": error}).encode()


def _ingest(config: ServiceConfig, engine: Engine, group: str) -> dict[str, object]:
    assert config.confirmation is not None
    consumer = _consumer(config.confirmation.topic, group)
    try:
        return ConfirmationIngester(config, engine, consumer).run(60, idle_seconds=3).as_dict()
    finally:
        consumer.close()


def test_offsets_are_committed_so_the_next_run_starts_after_the_batch(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic, results = topic_name("ev"), topic_name("res")
    create_topics(topic, results)
    ids = insert_rows(db_engine, topic, ["a"])
    config = service_config(topic=topic, confirmation={"topic": results})
    run_relay(config, db_engine)
    send(results, [_answer(ids[0], "SUCCESS")])
    group = "g-" + uuid.uuid4().hex
    assert _ingest(config, db_engine, group)["messages"] == 1
    assert _ingest(config, db_engine, group)["messages"] == 0


def test_retention_deletes_only_old_terminal_rows(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("ret")
    ids = insert_rows(db_engine, topic, [f"k{i}" for i in range(7)])
    plan = ["CONFIRMED", "CONFIRMED", "SENT", "NEW", "FAILED", "FAILED", "CONFIRMED"]
    ages = [10, 10, 10, 10, 10, 40, 1]  # days
    with db_engine.begin() as conn:
        for mid, status, age in zip(ids, plan, ages, strict=True):
            conn.execute(
                text(
                    "UPDATE outbox_message SET status = :s, updated_at = NOW(6) - INTERVAL :d DAY "
                    "WHERE message_id = :m"
                ),
                {"s": status, "d": age, "m": mid},
            )
    config = service_config(
        topic=topic, confirmation={"topic": "r"}, retention={"days": 7, "failed_days": 30, "chunk_size": 1}
    )
    stats = RetentionCleaner(config, db_engine).run(60)
    assert stats.deleted_terminal == 2 and stats.deleted_failed == 1 and stats.chunks == 3
    assert set(statuses(db_engine)) == {ids[2], ids[3], ids[4], ids[6]}


def test_retention_never_waits_on_locked_new_rows(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    ids = insert_rows(db_engine, topic_name("ret"), ["a", "b"])
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE outbox_message SET status='CONFIRMED', updated_at = NOW(6) - INTERVAL 9 DAY "
                "WHERE message_id = :m"
            ),
            {"m": ids[1]},
        )
    with db_engine.connect() as relay_conn:
        relay_conn.begin()
        relay_conn.execute(
            text("SELECT id FROM outbox_message WHERE message_id = :m FOR UPDATE"), {"m": ids[0]}
        )
        relay_conn.execute(text("SET SESSION innodb_lock_wait_timeout = 2"))
        stats = RetentionCleaner(service_config(topic="x", confirmation={"topic": "r"}), db_engine).run(30)
        relay_conn.rollback()
    assert stats.deleted_terminal == 1 and set(statuses(db_engine)) == {ids[0]}


def _inventory(conn: Connection, message: InboundMessage) -> None:
    body = message.json()
    if body.get("fail"):
        raise ValueError(f"cannot reserve {body['n']}")
    conn.execute(
        text("INSERT INTO effects (message_id, n) VALUES (:m, :n)"), {"m": message.message_id, "n": body["n"]}
    )


def test_idempotent_consumer_applies_each_message_once_and_reports_failures(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic, results = topic_name("ev"), topic_name("res")
    create_topics(topic, results)
    with db_engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE effects (id INT AUTO_INCREMENT PRIMARY KEY, message_id VARCHAR(64), n INT)")
        )
    ids = insert_rows(db_engine, topic, ["a", "b"]) + insert_rows(
        db_engine, topic, ["c"], payload='{"n": 9, "fail": true}'
    )
    config = service_config(topic=topic)
    run_relay(config, db_engine)
    with db_engine.begin() as conn:  # deliver everything twice
        conn.execute(text("UPDATE outbox_message SET status = 'NEW'"))
    run_relay(config, db_engine)
    assert len(read_all(topic)) == 6

    consumer = _consumer(topic, "inventory-" + uuid.uuid4().hex)
    answers = KafkaPublisher(producer(), 10)
    service = IdempotentConsumer("inventory", db_engine, consumer, answers, results, _inventory)
    stats = service.run(60, idle_seconds=3)
    consumer.close()

    assert stats.processed == 2 and stats.failed == 1 and stats.duplicates == 3
    with db_engine.connect() as conn:
        effects = conn.execute(text("SELECT message_id FROM effects ORDER BY id")).scalars().all()
        inbox = dict(conn.execute(text("SELECT message_id, status FROM inbox_message")).all())
    assert sorted(effects) == sorted(ids[:2])  # once each, none for the failed one (rolled back)
    assert inbox == {ids[0]: "SUCCESS", ids[1]: "SUCCESS", ids[2]: "FAILED"}
    answered = [json.loads(r.value) for r in read_all(results)]
    assert len(answered) == 6  # every delivery answered, duplicates with the stored result
    failed = [a for a in answered if a["message_id"] == ids[2]]
    assert {a["status"] for a in failed} == {"FAILED"} and "cannot reserve 9" in failed[0]["error"]

    # What the Outbox page shows of this inbox: the consumer's own counts, the redeliveries it skipped.
    view = InboxView(Inbox(consumer="inventory"), "outbox_db")
    with db_engine.connect() as conn:
        figures, newest = view.figures(conn), view.newest(conn)
    assert (figures.processed, figures.failed, figures.duplicates_skipped) == (2, 1, 3)
    assert figures.last_hour == 3 and figures.problems == [] and figures.last_seen is not None
    assert figures.last_duplicate_message_id in ids and figures.last_duplicate_at is not None
    assert sorted(r.message_id for r in newest) == sorted(ids) and newest[0].received_at == figures.last_seen


def test_inbox_purge_keeps_recent_dedupe_records(db_engine: Engine) -> None:
    from outbox_inbox.consumer import purge_inbox

    with db_engine.begin() as conn:
        for mid, consumer, days in [
            ("old-1", "inv", 30),
            ("old-2", "inv", 20),
            ("new", "inv", 1),
            ("other", "x", 30),
        ]:
            conn.execute(
                text(
                    "INSERT INTO inbox_message (consumer, message_id, topic, kafka_partition, kafka_offset, status,"
                    " received_at) VALUES (:c, :m, 't', 0, 0, 'SUCCESS', NOW(6) - INTERVAL :d DAY)"
                ),
                {"c": consumer, "m": mid, "d": days},
            )
    assert purge_inbox(db_engine, "inv", older_than_days=14, chunk=1) == 2
    with db_engine.connect() as conn:
        left = set(conn.execute(text("SELECT message_id FROM inbox_message")).scalars())
    assert left == {"new", "other"}
    with pytest.raises(ValueError, match="must be positive"):
        purge_inbox(db_engine, "inv", older_than_days=0)


def test_only_a_duplicate_message_id_counts_as_seen_before(db_engine: Engine) -> None:
    """A 1062 on any other unique key of the inbox is a real conflict and must surface, not be taken
    for a redelivery (which would answer the message without ever running its handler)."""
    from sqlalchemy.exc import IntegrityError

    from outbox_inbox.consumer import ConsumeStats

    with db_engine.begin() as conn:
        conn.execute(
            text(
                "ALTER TABLE inbox_message ADD UNIQUE KEY uq_inbox_position (topic, kafka_partition, kafka_offset)"
            )
        )
    applied: list[str] = []
    service = IdempotentConsumer(
        "inv",
        db_engine,
        None,
        None,
        "unused",
        lambda conn, m: applied.append(m.message_id),  # type: ignore[arg-type]
    )
    stats = ConsumeStats()
    first = InboundMessage("m1", None, "t", 0, 7, b"{}", {})
    assert service._process_one(first, stats)[0] == "SUCCESS"
    assert service._process_one(first, stats)[0] == "SUCCESS" and stats.duplicates == 1  # a redelivery
    with pytest.raises(IntegrityError, match="uq_inbox_position"):  # another id at the same position
        service._process_one(InboundMessage("m2", None, "t", 0, 7, b"{}", {}), stats)
    assert applied == ["m1"] and stats.duplicates == 1
