"""Scenario 8: an Airflow task attempt of the relay dies mid-run (after Kafka acked a batch, before it
was marked SENT) and the next attempt converges with nothing lost.

The attempt truly dies: the fault suite's DAG folder (tests/faults/airflow_dags) makes the relay task
SIGKILL its own process right after Kafka acknowledged its second batch, as a crashed worker would (no
exception handler, no rollback, no clean-up of its own). `airflow dags test` runs the task in its own
process (no executor, no supervisor), so the kill takes the whole command with it, exactly like a
worker machine dying: there is no Airflow process left to see the failure and schedule the retry
in-process. What Airflow does next for a dead worker (retry the task on another worker, or the next
scheduled run) is a new process running the same relay task against what the dead attempt left behind.
So the test asserts what the first process left behind (killed by SIGKILL; the acknowledged batch on the
broker but not SENT, nothing SENT that is not on the broker), then runs the relay DAG again as a new
`airflow dags test` process and asserts that it converges: every row SENT, none lost, no reordering, and
duplicates within the pipelined relay's promised bound of two batches (docs/semantics.md, Guarantees).
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from tests.faults.conftest import Broker, dags_test
from tests.faults.history import check_history
from tests.faults.support import FAST_KAFKA
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, statuses
from tests.stack import airflow_connections

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

ROWS, BATCH = 100, 20


def write_service(folder: Path, name: str, topic: str, **fields: object) -> Path:
    folder.mkdir(exist_ok=True)
    document = {"topic": topic, "batch_size": BATCH, "kafka": FAST_KAFKA, "retention": None, **fields}
    (folder / f"{name}.yaml").write_text(yaml.safe_dump(document))
    return folder


@pytest.mark.slow
def test_an_attempt_killed_mid_run_leaves_nothing_lost_and_the_next_attempt_converges(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    airflow_env: dict[str, str],
    tmp_path: Path,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("retried")
    create_topics(topic, bootstrap=broker.bootstrap)
    ids = insert_rows(db_engine, topic, [f"k{i % 6}" for i in range(ROWS)])
    marker = tmp_path / "first-attempt-died"
    env = {
        **airflow_env,
        **airflow_connections(db_engine, {"bootstrap.servers": broker.bootstrap}),
        "OUTBOX_RELAY_SERVICES_DIR": str(write_service(tmp_path / "services", "retried", topic)),
        "OUTBOX_FAULT_MARKER": str(marker),
    }

    died = dags_test(env, "outbox_retried_relay")
    assert died.returncode == -signal.SIGKILL, (died.stdout + died.stderr)[-5000:]  # the attempt was killed
    assert marker.read_text() == str(BATCH)  # ... right after Kafka acknowledged its whole 2nd batch
    left = check_history(db_engine, [topic], broker.bootstrap)
    sent = sum(1 for s in statuses(db_engine).values() if s == "SENT")
    # Pipelined: batch 1's SENT update may or may not have committed; batch 2 was never marked SENT.
    assert sent in (0, BATCH), sent
    assert left.published_messages == left.distinct_published == 2 * BATCH  # both acked batches, once each
    assert left.sent_without_ack == 0 and left.stuck == ROWS - sent

    again = dags_test(env, "outbox_retried_relay")  # a new process: the attempt after the dead one
    assert again.returncode == 0, (again.stdout + again.stderr)[-5000:]
    assert statuses(db_engine) == dict.fromkeys(ids, "SENT")

    history = check_history(db_engine, [topic], broker.bootstrap, consume=True)
    acked_not_sent = left.distinct_published - sent  # batch 2, and batch 1 unless its SENT update committed
    record_figures(history.figures(), sent_when_killed=sent, acked_not_sent_when_killed=acked_not_sent)
    history.assert_converged(max_duplicates=2 * BATCH)  # pipelined: at most two batches acked, not SENT
    # The duplicates are exactly the rows the dead attempt had acknowledged but not marked SENT.
    assert history.duplicates_published == acked_not_sent >= BATCH, history.figures()
