"""Scenarios 1 and 2: the relay process is killed with SIGKILL at the worst moments."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.faults.conftest import Broker
from tests.faults.history import check_history, high_watermarks
from tests.faults.support import config_document, service, spawn
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, run_relay, statuses

pytestmark = pytest.mark.integration

ROWS, BATCH = 120, 50


def _kill(child: object) -> None:
    import subprocess

    assert isinstance(child, subprocess.Popen)
    assert child.poll() is None, child.communicate()[1][-2000:]
    child.kill()
    child.wait(10)


def _setup(db_engine: Engine, broker: Broker, topic: str) -> list[str]:
    create_topics(topic, bootstrap=broker.bootstrap)
    return insert_rows(db_engine, topic, [f"k{i % 5}" for i in range(ROWS)])


def _converge(db_engine: Engine, broker: Broker, topic: str) -> int:
    stats = run_relay(service(topic, relay_lock_wait_seconds=10), db_engine, bootstrap=broker.bootstrap)
    return stats.published


def test_kill_9_after_the_broker_acked_but_before_sent_committed_republishes_one_batch(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    tmp_path: Path,
    wait_for: Callable[..., None],
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("crash")
    _setup(db_engine, broker, topic)
    flag = tmp_path / "acked"
    child = spawn(db_engine, broker.bootstrap, config_document(topic), fault="hang_after_ack", flag=str(flag))
    wait_for(lambda: flag.exists() or child.poll() is not None, "the doomed relay's first acked batch")
    _kill(child)
    assert flag.read_text() == str(BATCH)  # the broker acked a whole batch ...
    assert set(statuses(db_engine).values()) == {"NEW"}  # ... that was never marked SENT

    assert _converge(db_engine, broker, topic) == ROWS  # the next run re-publishes it

    history = check_history(db_engine, [topic], broker.bootstrap, consume=True)
    record_figures(history.figures())
    history.assert_converged(max_duplicates=BATCH)
    assert history.duplicates_published == BATCH and history.duplicate_effects == 0


def test_kill_9_inside_flush_marks_nothing_sent_and_the_next_run_converges(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    tmp_path: Path,
    wait_for: Callable[..., None],
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("flush")
    _setup(db_engine, broker, topic)
    flag = tmp_path / "flushing"
    child = spawn(db_engine, broker.bootstrap, config_document(topic), fault="hang_in_flush", flag=str(flag))
    wait_for(lambda: flag.exists() or child.poll() is not None, "the relay to enter flush")
    # Kill once the broker holds (acked) the first messages of the batch; their reports are never served.
    wait_for(lambda: high_watermarks([topic], broker.bootstrap) > 0, "the broker to take the batch")
    _kill(child)

    before = check_history(db_engine, [topic], broker.bootstrap)
    assert before.published_messages > 0  # the broker had acked messages of the killed batch ...
    assert before.sent_without_ack == 0 and set(statuses(db_engine).values()) == {"NEW"}  # ... none SENT
    assert _converge(db_engine, broker, topic) == ROWS

    history = check_history(db_engine, [topic], broker.bootstrap, consume=True)
    record_figures(history.figures(), published_before_kill=before.published_messages)
    history.assert_converged(max_duplicates=BATCH)


def test_kill_9_in_the_middle_of_a_multi_batch_run_leaves_no_row_sent_without_ack(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    tmp_path: Path,
    wait_for: Callable[..., None],
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("multi")
    create_topics(topic, bootstrap=broker.bootstrap)
    insert_rows(db_engine, topic, [f"k{i % 7}" for i in range(400)])
    flag = tmp_path / "batches"
    document = config_document(topic, batch_size=40)
    child = spawn(db_engine, broker.bootstrap, document, fault="slow_batches", flag=str(flag))
    wait_for(lambda: flag.exists() and int(flag.read_text() or 0) >= 3, "three published batches")
    time.sleep(random.uniform(0, 0.25))  # anywhere in the next batch: claim, produce, flush or SENT update
    _kill(child)

    before = check_history(db_engine, [topic], broker.bootstrap)
    assert before.sent_without_ack == 0 and 0 < before.stuck < 400
    assert _converge(db_engine, broker, topic) == before.stuck

    history = check_history(db_engine, [topic], broker.bootstrap, consume=True)
    record_figures(history.figures(), sent_before_kill=400 - before.stuck)
    history.assert_converged(max_duplicates=40)
