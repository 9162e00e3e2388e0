"""Relay contract against the real MariaDB and the real broker."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.kafka.publisher import BrokerUnavailableError, KafkaPublisher
from outbox_relay.kafka.transactions import TransactionsUnavailableError
from outbox_relay.models import Window
from outbox_relay.relay.engine import OutboxRelay, RunRequest
from outbox_relay.store.outbox import OutboxStore
from tests.integration.kafka_tools import create_topics, producer, read_all
from tests.integration.outbox_rows import insert_rows, run_relay, sent_by, statuses
from tests.stack import BROKER
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "serial"])
def test_relays_every_row_marks_sent_and_keeps_per_key_order(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    service_config: Callable[..., ServiceConfig],
    pipelining: bool,
) -> None:
    topic = topic_name("orders")
    create_topics(topic)
    keys = [f"k{i % 7}" for i in range(250)]
    ids = insert_rows(db_engine, topic, keys)
    config = service_config(topic=topic, batch_size=40, pipelining=pipelining)

    stats = run_relay(config, db_engine, run_id="scheduled__1")

    assert stats.published == 250 and stats.batches == 7  # drains many batches in one run
    assert set(statuses(db_engine).values()) == {"SENT"}
    with db_engine.connect() as conn:
        row = conn.execute(text("SELECT COUNT(*) FROM outbox_message WHERE sent_at IS NOT NULL")).scalar_one()
    assert row == 250
    assert set(sent_by(db_engine, config).values()) == {"scheduled__1"}
    records = read_all(topic)
    assert [r.headers["outbox-message-id"] for r in records if r.key == "k3"] == [
        mid for mid, k in zip(ids, keys, strict=True) if k == "k3"
    ]
    assert sorted(r.headers["outbox-message-id"] for r in records) == sorted(ids)
    first = records[0]
    assert {
        "outbox-message-id",
        "outbox-event-type",
        "outbox-service",
        "outbox-source-table",
        "outbox-row-id",
    } <= set(first.headers)
    assert first.headers["outbox-service"] == "orders"
    key_of = dict(zip(ids, keys, strict=True))
    assert all(r.key == key_of[r.headers["outbox-message-id"]] for r in records)  # key = aggregate id
    per_key: dict[str, set[int]] = defaultdict(set)
    for r in records:
        per_key[r.key or ""].add(r.partition)
    assert set(per_key) == set(keys) and all(len(p) == 1 for p in per_key.values())  # one partition per key
    assert len(set().union(*per_key.values())) > 1  # the keys do spread over the topic's 3 partitions


def test_threshold_uses_db_clock_and_skips_young_rows(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("thr")
    create_topics(topic)
    old = insert_rows(db_engine, topic, ["a"], age_seconds=120)
    young = insert_rows(db_engine, topic, ["b"], age_seconds=0)
    stats = run_relay(service_config(topic=topic, threshold_seconds=60), db_engine)
    assert stats.published == 1
    assert statuses(db_engine) == {old[0]: "SENT", young[0]: "NEW"}


def _first_of_three_locked(
    db_engine: Engine, topic_name: Callable[[str], str], base: str
) -> tuple[str, list[str], Connection]:
    """Three rows on a new topic, the first held locked (FOR UPDATE) by another open session."""
    topic = topic_name(base)
    create_topics(topic)
    ids = insert_rows(db_engine, topic, ["a", "b", "c"])
    other = db_engine.connect()
    other.begin()
    other.execute(text("SELECT id FROM outbox_message WHERE message_id = :m FOR UPDATE"), {"m": ids[0]})
    return topic, ids, other


def _waiting_for(engine: Engine, holder: int) -> int:
    """Transactions waiting for a row lock held by the session with connection id ``holder``."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text(
                    "SELECT COUNT(*) FROM information_schema.INNODB_LOCK_WAITS w "
                    "JOIN information_schema.INNODB_TRX t ON t.trx_id = w.blocking_trx_id "
                    "WHERE t.trx_mysql_thread_id = :holder"
                ),
                {"holder": holder},
            ).scalar_one()
        )


def test_serial_run_skips_rows_locked_by_another_session_not_waiting_for_them(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic, ids, other = _first_of_three_locked(db_engine, topic_name, "skip")
    with other:
        stats = run_relay(service_config(topic=topic, pipelining=False), db_engine)
        other.rollback()
    assert stats.published == 2
    assert statuses(db_engine) == {ids[0]: "NEW", ids[1]: "SENT", ids[2]: "SENT"}


def test_pipelined_run_publishes_a_row_locked_by_another_session_and_marks_it_once_released(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    """Pipelined claims take no row locks: the locked row is published, its SENT update waits. The lock is
    released only once both were seen: the row's message on the broker while the lock was still held, and
    the relay's update waiting for that lock."""
    topic, ids, other = _first_of_three_locked(db_engine, topic_name, "wait")
    with other, ThreadPoolExecutor(1) as pool:
        holder = other.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        run = pool.submit(run_relay, service_config(topic=topic, pipelining=True), db_engine)
        try:
            wait_until(
                lambda: ids[0] in {r.headers["outbox-message-id"] for r in read_all(topic)} or run.done(),
                "the locked row's message on the broker",
            )
            wait_until(
                lambda: _waiting_for(db_engine, holder) or run.done(), "the relay to wait for the lock"
            )
            assert not run.done(), run.result()  # still running: blocked on the lock, not finished without it
            assert statuses(db_engine)[ids[0]] == "NEW"
        finally:
            other.rollback()
        stats = run.result(timeout=60)
    assert stats.published == 3
    assert statuses(db_engine) == {ids[0]: "SENT", ids[1]: "SENT", ids[2]: "SENT"}
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(ids)


def test_unreachable_broker_fails_the_run_fast_and_marks_nothing_sent(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("down")
    ids = insert_rows(db_engine, topic, ["a", "b"])
    config = service_config(topic=topic, kafka={"delivery_timeout_ms": 2000, "flush_timeout_seconds": 3})
    dead = producer(**{"bootstrap.servers": "127.0.0.1:1", "message.timeout.ms": 2000})
    relay = OutboxRelay(config, db_engine, KafkaPublisher(dead, 3))
    with pytest.raises(BrokerUnavailableError, match="Is the broker reachable"):
        relay.run(RunRequest(run_id="r"))
    assert statuses(db_engine) == dict.fromkeys(ids, "NEW")
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT MAX(attempts) FROM outbox_message")).scalar_one() == 0


def test_backfill_window_relays_new_rows_and_republishes_unconfirmed_with_replay_header(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("backfill")
    create_topics(topic)
    in_window = insert_rows(db_engine, topic, ["a", "b"], age_seconds=3 * 3600)
    outside = insert_rows(db_engine, topic, ["c"], age_seconds=10 * 3600)
    config = service_config(topic=topic)
    with db_engine.connect() as conn:
        now: datetime = conn.execute(text("SELECT NOW(6)")).scalar_one()
    window = Window(now - timedelta(hours=4), now - timedelta(hours=2))
    with db_engine.begin() as conn:  # one row of the window was already sent but never confirmed
        conn.execute(
            text("UPDATE outbox_message SET status = 'SENT' WHERE message_id = :m"), {"m": in_window[1]}
        )

    plain = run_relay(config, db_engine, window=window)
    assert plain.published == 1 and plain.republished == 0
    assert statuses(db_engine)[outside[0]] == "NEW"

    replay = run_relay(config, db_engine, window=window, republish=True)
    assert replay.republished == 2 and replay.published == 0
    records = read_all(topic)
    replayed = [r for r in records if r.headers.get("outbox-replay") == "true"]
    assert sorted(r.headers["outbox-message-id"] for r in replayed) == sorted(in_window)
    assert outside[0] not in {r.headers["outbox-message-id"] for r in records}


def _legacy_config(topic: str, **extra: Any) -> ServiceConfig:
    return ServiceConfig.model_validate(
        {
            "service": "coupons",
            "table": "t_user_coupon_tran",
            "topic": topic,
            "event_type": "CouponEarned",
            "columns": {"id": "tid", "status": "status", "key": "uid"},
            "statuses": {"new": 0, "sent": 1, "confirmed": None, "failed": None},
            "payload": {"columns": ["uid", "coupon_money", "tid"]},
            "retention": None,
            **extra,
        }
    )


def test_legacy_table_with_integer_statuses_and_built_payload(
    db_engine: Engine, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("coupon")
    create_topics(topic)
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TABLE t_user_coupon_tran (tid BIGINT AUTO_INCREMENT PRIMARY KEY, uid BIGINT, "
                "coupon_money DECIMAL(10,2), status INT NOT NULL DEFAULT 0, KEY ix_status_tid (status, tid))"
            )
        )
        conn.execute(
            text("INSERT INTO t_user_coupon_tran (uid, coupon_money) VALUES (7, 5.50), (8, 1.00), (7, 2.25)")
        )
        conn.execute(text("INSERT INTO t_user_coupon_tran (uid, coupon_money) VALUES (NULL, 9.99)"))
    config = _legacy_config(topic, retry={"max_attempts": 2, "backoff_seconds": 0})

    stats = run_relay(config, db_engine)

    assert stats.published == 3 and stats.retried == 1
    records = read_all(topic)
    bodies = [json.loads(r.value) for r in records if r.key == "7"]
    assert bodies == [
        {"uid": 7, "coupon_money": "5.50", "tid": 1},
        {"uid": 7, "coupon_money": "2.25", "tid": 3},
    ]
    assert records[0].headers["outbox-message-id"].startswith("coupons:t_user_coupon_tran:")
    with db_engine.connect() as conn:
        assert dict(conn.execute(text("SELECT tid, status FROM t_user_coupon_tran")).all()) == {
            1: 1,
            2: 1,
            3: 1,
            4: 0,
        }
        attempt = conn.execute(text("SELECT attempts, failed, last_error FROM outbox_relay_attempt")).one()
    assert attempt[0] == 1 and attempt[1] == 0 and "NULL" in attempt[2]

    again = run_relay(config, db_engine)  # backoff 0: second attempt, then given up (max_attempts 2)
    assert again.failed == 1
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT failed FROM outbox_relay_attempt")).scalar_one() == 1
        assert conn.execute(text("SELECT status FROM t_user_coupon_tran WHERE tid = 4")).scalar_one() == 0
    assert run_relay(config, db_engine).claimed == 0  # a given-up row is never claimed again ...
    assert [r.headers["outbox-message-id"] for r in read_all(topic)] == [  # ... nor published
        r.headers["outbox-message-id"] for r in records
    ]
    with db_engine.begin() as conn:  # ... nor counted as waiting: the oldest-NEW age would grow for ever
        conn.execute(
            text("ALTER TABLE t_user_coupon_tran ADD created DATETIME(6) NOT NULL DEFAULT '2020-01-01'")
        )
    aged = _legacy_config(
        topic, columns={"id": "tid", "status": "status", "key": "uid", "created_at": "created"}
    )
    with db_engine.connect() as conn:
        assert OutboxStore(aged).backlog(conn)["oldest_new_seconds"] is None
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_relay_attempt SET failed = 0"))  # an operator re-queues it
    with db_engine.connect() as conn:
        assert OutboxStore(aged).backlog(conn)["oldest_new_seconds"] > 0
    assert run_relay(config, db_engine).claimed == 1


def test_a_busy_table_skips_a_scheduled_run_and_fails_a_backfill_run(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    from outbox_relay.relay.engine import RelayLockBusyError
    from outbox_relay.store.outbox import OutboxStore

    topic = topic_name("busy")
    create_topics(topic)
    insert_rows(db_engine, topic, ["a"])
    config = service_config(topic=topic, relay_lock_wait_seconds=0)
    with db_engine.connect() as other:
        assert OutboxStore(config).lock.acquire(other, 0)
        skipped = run_relay(config, db_engine)
        assert skipped.stopped_because == "another relay of this table is running" and skipped.published == 0
        holder = other.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        assert skipped.lock_holder_connection_id == holder  # named, so an operator can KILL it
        with db_engine.connect() as conn:
            now: datetime = conn.execute(text("SELECT NOW(6)")).scalar_one()
        with pytest.raises(RelayLockBusyError, match="held the relay lock"):
            run_relay(config, db_engine, window=Window(now - timedelta(hours=1), now))
        other.invalidate()  # the holder's connection dies (a crashed relay): its lock goes with it
    # The server drops the lock when it has processed the disconnect, a moment later: wait for it.
    patient = config.model_copy(update={"relay_lock_wait_seconds": 10})
    assert run_relay(patient, db_engine).published == 1  # the lock died with the other connection


def test_rows_naming_an_unregistered_or_invalid_topic_fail_alone(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("registered")
    create_topics(topic)
    good = insert_rows(db_engine, topic, ["a"])
    stray = insert_rows(db_engine, "payments.events", ["b"])
    config = service_config(topic=None, topics=[topic], retry={"max_attempts": 1})
    stats = run_relay(config, db_engine)
    assert stats.published == 1 and stats.failed == 1
    assert statuses(db_engine) == {good[0]: "SENT", stray[0]: "FAILED"}

    invalid = insert_rows(db_engine, "bad topic!", ["c"])
    stats = run_relay(service_config(topic=None, retry={"max_attempts": 1}), db_engine)
    assert stats.failed == 1 and statuses(db_engine)[invalid[0]] == "FAILED"
    with db_engine.connect() as conn:
        errors = dict(conn.execute(text("SELECT message_id, last_error FROM outbox_message")).all())
    assert "not one of the service's registered topics" in errors[stray[0]]
    assert "not a valid Kafka topic name" in errors[invalid[0]]


def test_a_payload_python_would_parse_but_the_database_calls_invalid_json_fails(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("nan")
    create_topics(topic)
    bad = insert_rows(db_engine, topic, ["a"], payload='{"price": NaN}')  # json.loads accepts NaN
    good = insert_rows(db_engine, topic, ["b"], payload='{"price": 1.5}')
    stats = run_relay(service_config(topic=topic, retry={"max_attempts": 1}), db_engine)
    assert stats.failed == 1 and stats.published == 1
    assert statuses(db_engine) == {bad[0]: "FAILED", good[0]: "SENT"}
    with db_engine.connect() as conn:
        error = conn.execute(
            text("SELECT last_error FROM outbox_message WHERE message_id = :m"), {"m": bad[0]}
        ).scalar_one()
    assert "NaN is not a JSON value" in error


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "serial"])
def test_a_bug_while_building_a_message_crashes_the_run_and_fails_no_row(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    service_config: Callable[..., ServiceConfig],
    monkeypatch: pytest.MonkeyPatch,
    pipelining: bool,
) -> None:
    """Only a declared poison-row error fails a row; a bug (here a ValueError from message building, the
    type that used to be taken for a poison row) must stop the run and cost no row an attempt."""
    topic = topic_name("bug")
    create_topics(topic)
    insert_rows(db_engine, topic, ["a", "b", "c"])

    def broken_message(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("a bug in message building, not a poison row")

    monkeypatch.setattr("outbox_relay.relay.messages.MessageBuilder.message", broken_message)
    with pytest.raises(ValueError, match="a bug in message building"):
        run_relay(service_config(topic=topic, pipelining=pipelining), db_engine)
    assert set(statuses(db_engine).values()) == {"NEW"}
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM outbox_relay_attempt")).scalar_one() == 0
    monkeypatch.undo()
    assert run_relay(service_config(topic=topic, pipelining=pipelining), db_engine).published == 3


def test_a_null_attempts_value_of_a_legacy_table_counts_as_zero(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    """Legacy tables may leave the attempts column nullable: NULL must not read as 'payload is not valid
    JSON' (the packed claim state would be NULL) nor stay NULL when a failure adds one."""
    topic = topic_name("nullattempts")
    create_topics(topic)
    with db_engine.begin() as conn:
        conn.execute(text("ALTER TABLE outbox_message MODIFY attempts INT NULL"))
    good, poison = insert_rows(db_engine, topic, ["a"]), insert_rows(db_engine, topic, ["b"], payload="{bad")
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET attempts = NULL"))
    stats = run_relay(service_config(topic=topic), db_engine)
    assert stats.published == 1 and stats.retried == 1
    with db_engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT message_id, attempts FROM outbox_message")).all())
    assert statuses(db_engine)[good[0]] == "SENT" and rows[poison[0]] == 1


@pytest.mark.skipif(
    BROKER != "tansu", reason="Apache Kafka has transactions (tests/integration/test_exactly_once.py)"
)
def test_exactly_once_is_refused_at_start_on_a_broker_without_transactions(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    """Tansu accepts transactional producers but shows aborted records to read_committed readers: the relay
    finds that out with an aborted probe record before it touches a row, and refuses the mode."""
    topic = topic_name("eos_refused")
    create_topics(topic)
    ids = insert_rows(db_engine, topic, ["a", "b"])
    config = service_config(
        topic=topic,
        delivery="exactly_once",
        kafka={
            "transactional_id_prefix": topic,
            "delivery_timeout_ms": 10_000,
            "transaction_timeout_ms": 10_000,
        },
    )

    with pytest.raises(TransactionsUnavailableError, match="set delivery: at_least_once for this broker"):
        run_relay(config, db_engine)
    assert set(statuses(db_engine).values()) == {"NEW"}
    assert not [r for r in read_all(topic) if r.headers.get("outbox-message-id") in ids]
