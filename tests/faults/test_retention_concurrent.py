"""Scenario 10: retention runs at the same time as the relay; it never deletes or blocks NEW or
unconfirmed rows (every session here gives up on any row lock after 1 s, so a block fails the test)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from outbox_relay.database import make_engine
from outbox_relay.retention import RetentionCleaner
from outbox_relay.store.outbox import expanding
from tests.faults.conftest import Broker
from tests.faults.history import check_history
from tests.faults.support import db_url, service
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, run_relay

pytestmark = pytest.mark.integration


def _impatient_engine(engine: Engine) -> Engine:
    impatient = make_engine(db_url(engine))

    @event.listens_for(impatient, "connect")
    def _short_lock_waits(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET SESSION innodb_lock_wait_timeout = 1")

    return impatient


def test_retention_alongside_the_relay_deletes_only_expired_terminal_rows_and_blocks_nothing(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("retention")
    create_topics(topic, bootstrap=broker.bootstrap)
    unconfirmed = insert_rows(db_engine, topic, [f"u{i}" for i in range(100)])
    confirmed = insert_rows(db_engine, topic, [f"c{i}" for i in range(200)])
    failed = insert_rows(db_engine, topic, [f"f{i}" for i in range(50)])
    config = service(
        topic,
        batch_size=20,
        confirmation={"topic": f"{topic}.results"},
        retention={"days": 7, "failed_days": 30, "chunk_size": 10},
    )
    run_relay(config, db_engine, "earlier", broker.bootstrap)  # really published, then aged below
    new = insert_rows(db_engine, topic, [f"k{i % 9}" for i in range(300)], age_seconds=30 * 86400)
    with db_engine.begin() as conn:
        for ids, status, days in (
            (unconfirmed, "SENT", 30),
            (confirmed, "CONFIRMED", 30),
            (failed, "FAILED", 40),
        ):
            conn.execute(
                expanding(
                    "UPDATE outbox_message SET status = :s, updated_at = NOW(6) - INTERVAL :d DAY "
                    "WHERE message_id IN :ids",
                    "ids",
                ),
                {"s": status, "d": days, "ids": ids},
            )
        conn.execute(  # NEW rows as old as the expired ones: age alone must never delete them
            text("UPDATE outbox_message SET updated_at = NOW(6) - INTERVAL 30 DAY WHERE status = 'NEW'")
        )
    relay_engine, cleanup_engine = _impatient_engine(db_engine), _impatient_engine(db_engine)
    with ThreadPoolExecutor(2) as pool:
        relayed = pool.submit(run_relay, config, relay_engine, "relay", broker.bootstrap)
        cleaned = pool.submit(RetentionCleaner(config, cleanup_engine).run, 60)
        relay_stats, cleanup_stats = relayed.result(), cleaned.result()

    with db_engine.connect() as conn:
        left = dict(conn.execute(text("SELECT message_id, status FROM outbox_message")).all())
    assert relay_stats.published == len(new)
    assert cleanup_stats.deleted_terminal == len(confirmed) and cleanup_stats.deleted_failed == len(failed)
    assert set(left) == set(new) | set(unconfirmed)
    history = check_history(db_engine, [topic], broker.bootstrap)
    record_figures(
        history.figures(),
        deleted_terminal=cleanup_stats.deleted_terminal,
        deleted_failed=cleanup_stats.deleted_failed,
        new_or_unconfirmed_deleted=len(set(new) | set(unconfirmed)) - len(left),
        retention_chunks=cleanup_stats.chunks,
        relay_batches=relay_stats.batches,
    )
    history.assert_converged(max_duplicates=0)  # no fault hit the relay: docs/semantics.md promises none
    assert history.distinct_published == len(new) + len(unconfirmed)
