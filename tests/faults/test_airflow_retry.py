"""Scenario 8: an Airflow task attempt of the relay dies mid-run (after Kafka acked a batch, before it
was marked SENT) and Airflow retries it: `airflow dags test` of the generated relay DAG, with the
retry delay cut to 1 s by the fault suite's DAG folder (tests/faults/airflow_dags)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from sqlalchemy import Engine

from tests.faults.conftest import Broker, dags_test
from tests.faults.history import check_history
from tests.faults.support import FAST_KAFKA, db_url
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
def test_an_attempt_that_dies_mid_run_is_retried_by_airflow_and_converges(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    airflow_env: dict[str, str],
    tmp_path: Path,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("retried")
    create_topics(topic, bootstrap=broker.bootstrap)
    insert_rows(db_engine, topic, [f"k{i % 6}" for i in range(ROWS)])
    marker = tmp_path / "first-attempt-died"
    env = {
        **airflow_env,
        **airflow_connections(db_engine, {"bootstrap.servers": broker.bootstrap}),
        "OUTBOX_RELAY_SERVICES_DIR": str(write_service(tmp_path / "services", "retried", topic)),
        "OUTBOX_FAULT_MARKER": str(marker),
    }
    assert db_url(db_engine)  # the connection above points at this test's database

    done = dags_test(env, "outbox_retried_relay")
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-5000:]
    assert marker.read_text() == str(BATCH)  # the first attempt died after its 2nd batch was acked
    assert "injected fault" in output and "up_for_retry" in output.lower()  # Airflow saw it fail, retried
    assert set(statuses(db_engine).values()) == {"SENT"}

    history = check_history(db_engine, [topic], broker.bootstrap, consume=True)
    record_figures(history.figures(), acked_batch_lost_with_the_attempt=BATCH)
    history.assert_converged(max_duplicates=BATCH)
    assert history.duplicates_published == BATCH
