"""Backfill against the real MariaDB and broker: a window relayed in chunks in one run, keys with an
older unpublished row held back, republish keeping relay_run_id with a history row, a retried run
resuming, one backfill per table, and a scheduled relay meanwhile saying why it did nothing."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, text

from outbox_relay.backfill import (
    HANDOVER_SECONDS,
    BackfillBusyError,
    Backfiller,
    BackfillJob,
    BackfillReport,
)
from outbox_relay.config import ServiceConfig
from outbox_relay.models import Window
from outbox_relay.relay.engine import BACKFILL_RUNNING
from outbox_relay.replay import HistoryEntry
from outbox_relay.store.outbox import OutboxStore
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, make_relay, run_relay, sent_by, statuses
from tests.stack import BROKER

pytestmark = pytest.mark.integration

AUDIT = HistoryEntry("oncall@example.com", "INC-7: broker outage", "manual__backfill_1")


def _config(topic: str, **extra: Any) -> ServiceConfig:
    return ServiceConfig.model_validate({"service": "billing", "topic": topic, **extra})


def _created(engine: Engine, message_ids: list[str], hours_ago: float) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE outbox_message SET created_at = NOW(6) - INTERVAL :s SECOND WHERE message_id IN :m"
            ).bindparams(bindparam("m", expanding=True)),
            {"s": int(hours_ago * 3600), "m": message_ids},
        )


def _window(engine: Engine, from_hours: float, to_hours: float) -> Window:
    with engine.connect() as conn:
        now: datetime = conn.execute(text("SELECT NOW(6)")).scalar_one()
    return Window(now - timedelta(hours=from_hours), now - timedelta(hours=to_hours))


def _by_key(topic: str) -> dict[str | None, list[str]]:
    """Message ids on the topic per key, in offset order (a key's messages share a partition)."""
    keyed: dict[str | None, list[str]] = {}
    for record in sorted(read_all(topic), key=lambda r: (r.partition, r.offset)):
        keyed.setdefault(record.key, []).append(record.headers["outbox-message-id"])
    return keyed


def _backfiller(config: ServiceConfig, engine: Engine, sleeps: list[float] | None = None) -> Backfiller:
    relay = make_relay(config, engine)
    return Backfiller(config, engine, relay, sleep=(sleeps.append if sleeps is not None else lambda s: None))


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_a_window_is_relayed_in_chunks_and_never_overtakes_an_older_row_of_its_key(
    db_engine: Engine, topic_name: Callable[[str], str], delivery: str
) -> None:
    """With exactly-once delivery every chunk is a run of its own: each starts its transactions again."""
    if delivery == "exactly_once" and BROKER != "kafka":
        pytest.skip("Kafka transactions (Tansu refuses the mode)")
    topic = topic_name("bf_window")
    create_topics(topic)
    config = _config(topic, batch_size=2, delivery=delivery, kafka={"transactional_id_prefix": topic})
    older = insert_rows(db_engine, topic, ["k1"])  # NEW, before the window: k1's window row must wait
    inside = insert_rows(db_engine, topic, ["k1", "k2", "k2", "k2", "k3"])
    after = insert_rows(db_engine, topic, ["k4"])
    _created(db_engine, older, 8)
    _created(db_engine, inside, 4)
    _created(db_engine, after, 1)
    sleeps: list[float] = []
    seen: list[BackfillReport] = []
    request = BackfillJob(_window(db_engine, 6, 2), AUDIT, max_rows_per_second=10_000)
    report = _backfiller(config, db_engine, sleeps).run(request, seen.append)

    status = statuses(db_engine)
    assert [status[m] for m in inside] == ["NEW", "SENT", "SENT", "SENT", "SENT"]
    assert status[older[0]] == "NEW" and status[after[0]] == "NEW"
    assert (report.published, report.held_back, report.stopped_because) == (4, 1, "drained")
    assert report.rows_in_window == {"NEW": 5}
    # Throttled: about one batch (2 rows) per chunk, each followed by a pause; progress after each chunk.
    assert report.chunks >= 2 and len(seen) == report.chunks and len(sleeps) == report.chunks - 1
    assert all(s >= HANDOVER_SECONDS for s in sleeps)
    assert _by_key(topic) == {"k2": inside[1:4], "k3": inside[4:]}  # in order; k1's row held back
    sent = {m for m, s in statuses(db_engine).items() if s == "SENT"}
    assert {run for m, run in sent_by(db_engine, config).items() if m in sent} == {AUDIT.run_id}

    # The scheduled relay sends k1's rows in order afterwards.
    assert run_relay(config, db_engine).published == 3
    assert _by_key(topic)["k1"] == [older[0], inside[0]]


def test_republish_keeps_status_and_run_id_records_history_and_a_retry_resumes(
    db_engine: Engine, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("bf_republish")
    create_topics(topic)
    config = _config(topic)
    sent = insert_rows(db_engine, topic, ["a", "b", "c"])
    fresh = insert_rows(db_engine, topic, ["d"])
    _created(db_engine, sent + fresh, 3)
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE outbox_message SET status = 'SENT', relay_run_id = 'scheduled__original' "
                "WHERE message_id IN :m"
            ).bindparams(bindparam("m", expanding=True)),
            {"m": sent},
        )
    window = _window(db_engine, 6, 2)
    dry = _backfiller(config, db_engine).run(BackfillJob(window, AUDIT, republish=True, dry_run=True))
    assert dry.rows_in_window == {"NEW": 1, "SENT": 3} and dry.sent == 0 and read_all(topic) == []

    report = _backfiller(config, db_engine).run(BackfillJob(window, AUDIT, republish=True))
    assert (report.published, report.republished) == (1, 3)
    records = read_all(topic)
    assert sorted(
        r.headers["outbox-message-id"] for r in records if r.headers.get("outbox-replay")
    ) == sorted(sent)
    rows = sent_by(db_engine, config)
    with db_engine.connect() as conn:
        history = conn.execute(
            text(
                "SELECT message_id, action, previous_run_id, requested_by, reason, run_id FROM outbox_relay_replay"
            )
        ).all()
    assert {m: rows[m] for m in sent} == dict.fromkeys(sent, "scheduled__original")
    assert rows[fresh[0]] == AUDIT.run_id
    assert sorted(tuple(h) for h in history) == sorted(
        (m, "republish", "scheduled__original", AUDIT.requested_by, AUDIT.reason, AUDIT.run_id) for m in sent
    )

    # Airflow retries the same run (same run id): it resumes after the last row it republished.
    again = _backfiller(config, db_engine).run(BackfillJob(window, AUDIT, republish=True))
    assert again.resumed_after is not None and again.republished == 0
    assert len(read_all(topic)) == 4


def test_one_backfill_per_table_and_a_scheduled_relay_meanwhile_says_why(
    db_engine: Engine, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("bf_busy")
    create_topics(topic)
    config = _config(topic, relay_lock_wait_seconds=0)
    insert_rows(db_engine, topic, ["a"])
    store = OutboxStore(config)
    with db_engine.connect() as other:  # another backfill, between two of its chunks
        holder = other.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        assert store.backfill_lock.acquire(other, 0)
        with pytest.raises(
            BackfillBusyError, match=f"another backfill of outbox_message .*connection id {holder}"
        ):
            _backfiller(config, db_engine).run(BackfillJob(_window(db_engine, 1, 0), AUDIT))
        assert run_relay(config, db_engine).published == 1  # the relay lock is free: relays take turns
        insert_rows(db_engine, topic, ["b"])
        assert store.lock.acquire(other, 0)  # the backfill's chunk holds the relay lock
        stats = run_relay(config, db_engine)
        assert (stats.published, stats.stopped_because) == (0, BACKFILL_RUNNING)
        store.lock.release(other)
        store.backfill_lock.release(other)
    assert run_relay(config, db_engine).published == 1
