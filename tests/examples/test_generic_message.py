"""Scenario generic_message end to end on the real MariaDB and broker: two subsystems share one
message table (row_filter), per-row partition and retry flag, a consumer table written with the
business change, reconciliation + re-delivery, and history cleanup of both tables."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer
from sqlalchemy import Engine, text

from outbox_examples import EXAMPLES_SQL_DIR
from outbox_examples.generic_message.services import (
    LEDGER,
    ConsumerTableConsumer,
    create_invoice,
    ledger_handler,
    write_business,
)
from outbox_inbox.consumer import InboundMessage
from outbox_relay.config import ServiceConfig
from outbox_relay.models import Window
from outbox_relay.reconciliation import (
    CONSUMER_FAILED,
    MISSING,
    PRODUCER_FAILED,
    UNMARKED,
    Reconciler,
    purge_consumer_table,
)
from outbox_relay.retention import RetentionCleaner
from outbox_relay.store.ddl import apply_ddl
from tests.conftest import BOOTSTRAP, ROOT
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import run_relay

pytestmark = pytest.mark.integration

SERVICES = ROOT / "include" / "outbox_examples" / "generic_message" / "services"


def example_config(name: str, **overrides: Any) -> ServiceConfig:
    document = yaml.safe_load((SERVICES / f"{name}.yaml").read_text())
    document.update(overrides)
    return ServiceConfig.model_validate(document)


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    apply_ddl(db_engine, EXAMPLES_SQL_DIR / "generic_message.sql")
    return db_engine


@pytest.fixture
def configs(topic_name: Callable[[str], str]) -> Iterator[tuple[ServiceConfig, ServiceConfig]]:
    billing_topic, shipping_topic = topic_name("billing"), topic_name("shipping")
    create_topics(billing_topic, shipping_topic, partitions=3)
    yield example_config("billing", topic=billing_topic), example_config("shipping", topic=shipping_topic)


def consume(engine: Engine, topics: list[str], group: str, drop: set[str] | None = None) -> Any:
    consumer = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe(topics)
    ledger = ConsumerTableConsumer(LEDGER, engine, ledger_handler)
    dropped = drop or set()

    def lose(message: InboundMessage) -> bool:
        return message.message_id in dropped

    try:
        return ledger.run(consumer, time_budget_seconds=60, idle_seconds=2, drop=lose)
    finally:
        consumer.close()


def rows(engine: Engine, where: str = "1 = 1", **params: Any) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        result = conn.execute(text(f"SELECT * FROM message_send WHERE {where} ORDER BY id"), params)
        return [dict(r) for r in result.mappings()]


def test_shared_table_partition_retry_flag_consumer_table_and_reconciliation(
    engine: Engine, configs: tuple[ServiceConfig, ServiceConfig]
) -> None:
    billing, shipping = configs
    assert billing.topic is not None and shipping.topic is not None
    write_business(engine, 20, rejected_every=5, topics=(billing.topic, shipping.topic))
    with engine.begin() as conn:  # two poison rows, each its own business id, bad partition 99
        create_invoice(conn, 1, billing.topic, retry=False, partition=99)
        create_invoice(conn, 2, billing.topic, retry=True, partition=99)
        create_invoice(conn, 3, billing.topic, partition=2)  # an explicit partition that exists
    started = datetime.now() - timedelta(minutes=5)

    # shipping's relay sees only shipping's rows of the shared table
    assert run_relay(shipping, engine).published == 20
    assert {r["status"] for r in rows(engine, "service_name = 'billing'")} == {0}

    stats = run_relay(billing, engine)
    assert stats.published == 41 and stats.failed == 1 and stats.retried == 1
    no_retry, retry = rows(engine, "kafka_partition = 99")
    assert (no_retry["status"], no_retry["attempts"]) == (2, 1)  # retry flag 0: FAILED on first failure
    assert "partition 99 of topic" in no_retry["last_error"] and "does not exist" in no_retry["last_error"]
    assert (retry["status"], retry["attempts"]) == (0, 1)  # retry flag 1: retried
    run_relay(billing, engine)
    run_relay(billing, engine)
    retry = rows(engine, "id = :id", id=retry["id"])[0]
    assert (retry["status"], retry["attempts"]) == (2, 3)  # out of its 3 attempts

    # every message delivered twice (a backfill re-publishing the SENT rows of the window)
    window = Window(started, datetime.now() + timedelta(minutes=5))
    assert run_relay(billing, engine, window=window, republish=True).republished == 41
    assert run_relay(shipping, engine, window=window, republish=True).republished == 20
    on_topic = read_all(billing.topic) + read_all(shipping.topic)
    copies = Counter(r.headers["outbox-message-id"] for r in on_topic)
    assert len(copies) == 61 and set(copies.values()) == {2}
    explicit = next(
        r for r in on_topic if r.value == b'{"kind": "invoice_created", "seq": 1, "amount_cents": 3}'
    )
    assert explicit.partition == 2

    sent = rows(engine, "service_name = 'billing' AND status = 1")
    dropped = sent[5]["message_id"]  # the consumer loses this one (both copies)
    stats = consume(engine, [billing.topic, shipping.topic], f"ledger-{uuid.uuid4().hex[:8]}", {dropped})
    assert stats.dropped == 2 and stats.duplicates == 61 - 1 and stats.failed == 4
    with engine.connect() as conn:
        effects = dict(
            conn.execute(text("SELECT message_id, COUNT(*) FROM ledger_entry GROUP BY message_id")).all()
        )
        failed = conn.execute(
            text("SELECT business_id, error_text FROM message_consume WHERE status = 2")
        ).all()
        order = conn.execute(text("SELECT business_id, seq FROM ledger_entry ORDER BY id")).all()
    assert set(effects.values()) == {1} and len(effects) == 61 - 1 - 4  # one effect per message
    assert len(failed) == 4 and all("RejectedEntryError: negative amount" in e for _b, e in failed)
    seen: dict[str, int] = {}
    for business_id, seq in order:  # per-key order: seq 1 before seq 2 for every invoice
        assert seq > seen.get(business_id, 0), business_id
        seen[business_id] = seq

    unmarked = sent[7]["message_id"]  # consumed, but the "mark sent" update was lost
    with engine.begin() as conn:
        conn.execute(text("UPDATE message_send SET status = 0 WHERE message_id = :m"), {"m": unmarked})

    report = Reconciler(billing, engine).run()
    assert report.counts == {MISSING: 1, UNMARKED: 1, CONSUMER_FAILED: 4, PRODUCER_FAILED: 2}
    assert [i["message_id"] for i in report.listed[MISSING]] == [dropped]
    assert [i["message_id"] for i in report.listed[UNMARKED]] == [unmarked]
    assert all("partition 99" in i["error"] for i in report.listed[PRODUCER_FAILED])
    assert report.checked == 43 and report.missing == 2
    assert Reconciler(shipping, engine).run().missing == 0

    repaired = Reconciler(billing, engine).run(redeliver=True)
    assert (repaired.redelivered, repaired.marked_sent) == (1, 1)
    assert rows(engine, "message_id = :m", m=unmarked)[0]["status"] == 1
    again = Reconciler(billing, engine).run(redeliver=True)  # idempotent: nothing left to change
    assert (again.redelivered, again.marked_sent) == (0, 1 - 1)
    assert again.counts[MISSING] == 0  # the reset row is new (unsent) now, waiting for the relay

    assert run_relay(billing, engine).published == 1
    consume(engine, [billing.topic], f"ledger-{uuid.uuid4().hex[:8]}")
    final = Reconciler(billing, engine).run()
    assert final.missing == 0 and final.unsent == 0 and final.counts[CONSUMER_FAILED] == 4
    with engine.connect() as conn:
        assert (
            conn.execute(
                text("SELECT COUNT(*) FROM ledger_entry WHERE message_id = :m"), {"m": dropped}
            ).scalar()
            == 1
        )

    # --include-failed: the rows the relay gave up on get a fresh try (and fail again: partition 99)
    retried = Reconciler(billing, engine).run(redeliver=True, include_failed=True)
    assert retried.redelivered == 2 and retried.counts[PRODUCER_FAILED] == 2
    assert {(r["status"], r["attempts"]) for r in rows(engine, "kafka_partition = 99")} == {(0, 0)}
    assert run_relay(billing, engine).failed == 1  # the retry-flag-0 row, at once
    assert sorted((r["status"], r["attempts"]) for r in rows(engine, "kafka_partition = 99")) == [
        (0, 1),
        (2, 1),
    ]


def test_a_window_and_the_grace_period_limit_what_is_reported(
    engine: Engine, configs: tuple[ServiceConfig, ServiceConfig]
) -> None:
    billing = configs[0].model_copy(
        update={"reconciliation": configs[0].reconciliation.model_copy(update={"grace_seconds": 3600})}  # type: ignore[union-attr]
    )
    with engine.begin() as conn:
        old = create_invoice(conn, 10, billing.topic)
        create_invoice(conn, 11, billing.topic)
        conn.execute(text("UPDATE message_send SET status = 1, sent_at = NOW(6)"))
        conn.execute(
            text("UPDATE message_send SET created_at = NOW(6) - INTERVAL 2 DAY, sent_at = NOW(6) - INTERVAL 2 DAY "
                 "WHERE business_id = :b"), {"b": old},
        )  # fmt: skip
    recent = Reconciler(billing, engine).run()  # last 24 h: only the fresh row, still within its grace
    assert (recent.checked, recent.in_flight, recent.missing) == (1, 1, 0)
    with engine.connect() as conn:
        now = conn.execute(text("SELECT NOW()")).scalar_one()
    past = Reconciler(billing, engine).run(since=now - timedelta(days=3), until=now - timedelta(days=1))
    assert (past.checked, past.counts[MISSING]) == (1, 1)
    with pytest.raises(ValueError, match="must be before"):
        Reconciler(billing, engine).run(since=now, until=now - timedelta(days=1))


def test_history_cleanup_of_both_tables_keeps_the_window(
    engine: Engine, configs: tuple[ServiceConfig, ServiceConfig]
) -> None:
    billing, _shipping = configs
    with engine.begin() as conn:
        for service, status, days in [
            ("billing", 1, 10), ("billing", 1, 2), ("billing", 0, 10), ("billing", 2, 10), ("billing", 2, 40),
            ("shipping", 1, 10),
        ]:  # fmt: skip
            conn.execute(
                text(
                    "INSERT INTO message_send (message_id, business_id, service_name, topic, body, status, "
                    "created_at, updated_at) VALUES (UUID(), :b, :s, 't', '{}', :st, "
                    "NOW(6) - INTERVAL :d DAY, NOW(6) - INTERVAL :d DAY)"
                ),
                {"b": f"{service}-{status}-{days}", "s": service, "st": status, "d": days},
            )
        for consumer, status, days in [
            (LEDGER, 1, 20), (LEDGER, 1, 5), (LEDGER, 2, 20), (LEDGER, 2, 40), (LEDGER, 0, 40), ("audit", 1, 20),
        ]:  # fmt: skip
            conn.execute(
                text(
                    "INSERT INTO message_consume (message_id, business_id, topic, kafka_partition, kafka_offset, "
                    "status, service_name, created_at) VALUES (UUID(), :b, 't', 0, 0, :st, :c, "
                    "NOW(6) - INTERVAL :d DAY)"
                ),
                {"b": f"{consumer}-{status}-{days}", "st": status, "c": consumer, "d": days},
            )

    RetentionCleaner(billing, engine).run()
    stats = purge_consumer_table(billing, engine, chunk_size=1)
    assert (stats.deleted_consumed, stats.deleted_failed) == (1, 1)
    with engine.connect() as conn:
        producers = {r[0] for r in conn.execute(text("SELECT business_id FROM message_send"))}
        consumers = {r[0] for r in conn.execute(text("SELECT business_id FROM message_consume"))}
    # sent kept 7 days, failed 30, unsent always; the other subsystem's rows are not billing's to delete
    assert producers == {"billing-1-2", "billing-0-10", "billing-2-10", "shipping-1-10"}
    # consumed kept 14 days, failed 30, pending always; another consumer's records untouched
    assert consumers == {"ledger-1-5", "ledger-2-20", "ledger-0-40", "audit-1-20"}


def test_relays_of_two_subsystems_sharing_a_table_do_not_wait_for_each_other(
    engine: Engine, configs: tuple[ServiceConfig, ServiceConfig]
) -> None:
    from outbox_relay.store.outbox import OutboxStore

    billing, shipping = configs
    with engine.connect() as first, engine.connect() as second:
        assert OutboxStore(billing).lock.acquire(first, 0)
        assert OutboxStore(shipping).lock.acquire(second, 0)  # a different subsystem's lock
        assert not OutboxStore(billing).lock.acquire(second, 0)  # same subsystem: takes turns
        OutboxStore(billing).lock.release(first)
        OutboxStore(shipping).lock.release(second)


def test_example_configs_are_valid() -> None:
    from outbox_relay.config.loader import load_services

    loaded = load_services(Path(SERVICES))
    assert loaded.errors == [] and set(loaded.services) == {"billing", "shipping"}


def test_validate_knows_the_shared_table_index_and_the_consumer_table(engine: Engine) -> None:
    from outbox_relay.checks import CheckReport, check_database

    billing = example_config("billing")

    def problems(config: ServiceConfig) -> list[str]:
        report = CheckReport(config.service)
        with engine.connect() as conn:
            check_database(conn, config, report)
        return report.problems + report.fixes

    assert problems(billing) == []  # (service_name, status, id) serves the filtered scan
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE message_send DROP INDEX ix_message_send_service_status_id"))
        conn.execute(text("ALTER TABLE message_consume RENAME COLUMN error_text TO err"))
    wrong_filter = billing.model_copy(
        update={"row_filter": billing.row_filter.model_copy(update={"column": "svc"})}
    )  # type: ignore[union-attr]
    found = problems(wrong_filter)
    assert "column 'svc' (row_filter.column) not found in message_send" in found
    assert "column 'err'" not in " ".join(found)
    assert "column 'error_text' (reconciliation.columns.error) not found in message_consume" in found
    assert any("ADD INDEX `ix_message_send_svc_status_id` (`svc`, `status`, `id`)" in p for p in found)
