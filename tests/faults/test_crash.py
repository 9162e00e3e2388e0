"""Scenarios 1 and 2: the relay process is killed with SIGKILL at the worst moments."""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.faults.conftest import Broker
from tests.faults.history import History, check_history, high_watermarks
from tests.faults.support import config_document, service, spawn
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, run_relay, statuses

pytestmark = pytest.mark.integration

ROWS, BATCH = 120, 50
Doomed = Callable[..., tuple[subprocess.Popen[str], Path]]


@pytest.fixture
def doomed_relay(
    db_engine: Engine, broker: Broker, tmp_path: Path, wait_for: Callable[..., None]
) -> Iterator[Doomed]:
    """Start a relay process with a fault; return once its flag file says the fault point is reached."""
    children: list[subprocess.Popen[str]] = []

    def start(
        topic: str, fault: str, ready: Callable[[Path], bool] = Path.exists, **fields: Any
    ) -> tuple[subprocess.Popen[str], Path]:
        create_topics(topic, bootstrap=broker.bootstrap)
        insert_rows(db_engine, topic, [f"k{i % 7}" for i in range(fields.pop("rows", ROWS))])
        flag = tmp_path / fault
        document = config_document(topic, **fields)
        child = spawn(db_engine, broker.bootstrap, document, fault=fault, flag=str(flag))
        children.append(child)
        wait_for(lambda: (flag.exists() and ready(flag)) or child.poll() is not None, f"the relay's {fault}")
        return child, flag

    yield start
    for child in children:
        if child.poll() is None:
            child.kill()
            child.wait(10)


def _kill(child: subprocess.Popen[str]) -> None:
    assert child.poll() is None, child.communicate()[1][-2000:]
    child.kill()
    child.wait(10)


def _converge(db_engine: Engine, broker: Broker, topic: str, expected: int) -> History:
    """The next run relays what is left; then the checker reads everything back, consumer included."""
    stats = run_relay(service(topic, relay_lock_wait_seconds=10), db_engine, bootstrap=broker.bootstrap)
    assert stats.published == expected
    return check_history(db_engine, [topic], broker.bootstrap, consume=True)


def test_kill_9_after_the_broker_acked_but_before_sent_committed_republishes_one_batch(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    doomed_relay: Doomed,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("crash")
    child, flag = doomed_relay(topic, "hang_after_ack")
    _kill(child)
    assert flag.read_text() == str(BATCH)  # the broker acked a whole batch ...
    assert set(statuses(db_engine).values()) == {"NEW"}  # ... that was never marked SENT

    history = _converge(db_engine, broker, topic, ROWS)  # the next run re-publishes it
    record_figures(history.figures())
    history.assert_converged(max_duplicates=BATCH)
    assert history.duplicates_published == BATCH and history.duplicate_effects == 0


def test_kill_9_inside_flush_marks_nothing_sent_and_the_next_run_converges(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    doomed_relay: Doomed,
    wait_for: Callable[..., None],
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("flush")
    child, _flag = doomed_relay(topic, "hang_in_flush")
    # Kill once the broker holds (acked) the first messages of the batch; their reports are never served.
    wait_for(lambda: high_watermarks([topic], broker.bootstrap) > 0, "the broker to take the batch")
    _kill(child)

    before = check_history(db_engine, [topic], broker.bootstrap)
    assert before.published_messages > 0  # the broker had acked messages of the killed batch ...
    assert before.sent_without_ack == 0 and set(statuses(db_engine).values()) == {"NEW"}  # ... none SENT

    history = _converge(db_engine, broker, topic, ROWS)
    record_figures(history.figures(), published_before_kill=before.published_messages)
    history.assert_converged(max_duplicates=BATCH)


def test_kill_9_in_the_middle_of_a_multi_batch_run_leaves_no_row_sent_without_ack(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    doomed_relay: Doomed,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("multi")
    three_batches: Callable[[Path], bool] = lambda flag: int(flag.read_text() or 0) >= 3  # noqa: E731
    child, _flag = doomed_relay(topic, "slow_batches", three_batches, rows=400, batch_size=40)
    time.sleep(random.uniform(0, 0.25))  # anywhere in the next batch: claim, produce, flush or SENT update
    _kill(child)

    before = check_history(db_engine, [topic], broker.bootstrap)
    assert before.sent_without_ack == 0 and 0 < before.stuck < 400

    history = _converge(db_engine, broker, topic, before.stuck)
    record_figures(history.figures(), sent_before_kill=400 - before.stuck)
    history.assert_converged(max_duplicates=2 * 40)  # pipelined: up to two batches acked but not yet SENT
