"""Scenario 6: poison rows end FAILED with their error (and in the dead-letter topic), every other row
is delivered, and later rows of a poison row's key wait until it is given up on."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from tests.faults.conftest import Broker
from tests.faults.history import check_history
from tests.faults.support import service
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, run_relay, statuses
from tests.waiting import wait_until

pytestmark = pytest.mark.integration

BACKOFF = 1.0


def _in_backoff(engine: Engine) -> int:
    """Rows that failed once and wait for their retry time (database clock)."""
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COUNT(*) FROM outbox_message WHERE attempts = 1 AND next_attempt_at > NOW(6)")
            ).scalar_one()
        )


def test_poison_rows_fail_alone_after_max_attempts_and_their_keys_wait(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    caplog: pytest.LogCaptureFixture,
    record_figures: Callable[..., None],
) -> None:
    topic, dlq = topic_name("poison"), topic_name("dlq")
    create_topics(topic, dlq, bootstrap=broker.bootstrap)
    with db_engine.begin() as conn:
        conn.execute(text("ALTER TABLE outbox_message MODIFY aggregate_id VARCHAR(191) NULL"))
    poison = {
        "not json": insert_rows(db_engine, topic, ["p1"], payload="{not json")[0],
        "too large": insert_rows(db_engine, topic, ["p2"], payload=json.dumps({"b": "x" * 1_500_000}))[0],
        "invalid topic": insert_rows(db_engine, "bad topic!", ["p3"])[0],
        "null key": insert_rows(db_engine, topic, ["tmp"])[0],
    }
    with db_engine.begin() as conn:
        conn.execute(
            text("UPDATE outbox_message SET aggregate_id = NULL WHERE message_id = :m"),
            {"m": poison["null key"]},
        )
    good = insert_rows(db_engine, topic, [f"g{i % 4}" for i in range(20)])
    behind = insert_rows(db_engine, topic, ["p1", "p2", "p3"])  # same keys as poison rows: must wait
    config = service(
        topic=None,
        dead_letter_topic=dlq,
        retry={"max_attempts": 2, "backoff_seconds": BACKOFF},
        kafka={"delivery_timeout_ms": 5000, "flush_timeout_seconds": 6},
    )

    first = run_relay(config, db_engine, bootstrap=broker.bootstrap)
    state = statuses(db_engine)
    assert first.retried == 4 and first.published == 20 and first.held_back == 3
    assert all(state[m] == "SENT" for m in good)
    assert all(state[m] == "NEW" for m in [*poison.values(), *behind])  # retrying, and waiting behind them
    assert _in_backoff(db_engine) == 4
    assert run_relay(config, db_engine, bootstrap=broker.bootstrap).published == 0  # still in backoff

    wait_until(  # by the database clock, which is the one the relay's backoff is measured on
        lambda: _in_backoff(db_engine) == 0, f"the poison rows' {BACKOFF:g}s backoff to pass", BACKOFF + 10
    )
    second = run_relay(config, db_engine, bootstrap=broker.bootstrap)
    assert second.failed == 4 and second.dead_lettered == 3
    # The row behind the too-large one was held in this batch (its rejection came from produce() of the
    # same batch); it goes with the next run, still after its predecessor.
    assert second.published == 2 and second.held_back == 1
    assert run_relay(config, db_engine, bootstrap=broker.bootstrap).published == 1

    state = statuses(db_engine)
    with db_engine.connect() as conn:
        errors = dict(conn.execute(text("SELECT message_id, last_error FROM outbox_message")).all())
    assert {what: state[m] for what, m in poison.items()} == dict.fromkeys(poison, "FAILED")
    assert "not valid JSON" in errors[poison["not json"]]
    assert "MSG_SIZE_TOO_LARGE" in errors[poison["too large"]]
    assert "dead-letter copy rejected" in errors[poison["too large"]]  # too large for the DLQ as well
    assert "not a valid Kafka topic name" in errors[poison["invalid topic"]]
    assert "NULL" in errors[poison["null key"]]
    dead = {r.headers["outbox-message-id"]: r for r in read_all(dlq, bootstrap=broker.bootstrap)}
    assert set(dead) == {poison["not json"], poison["invalid topic"], poison["null key"]}
    assert "not valid JSON" in dead[poison["not json"]].headers["outbox-error"]
    given_up = [
        r.getMessage() for r in caplog.records if r.levelname == "WARNING" and "FAILED" in r.getMessage()
    ]
    assert len(given_up) == 4  # each row given up on is in the task log with its error

    history = check_history(db_engine, [topic], broker.bootstrap, consume=True)
    record_figures(history.figures(), dead_lettered=len(dead))
    history.assert_converged()
    assert history.failed == 4 and history.distinct_published == len(good) + len(behind)
