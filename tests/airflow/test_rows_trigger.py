"""Event-driven relays on a real scheduler and triggerer: a service with `schedule: "@rows"` gets no run
while its table is empty; rows written start its relay within seconds (the triggerer's probe yields an
asset event the relay DAG is scheduled on), and once drained the trigger waits for new rows again."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.airflow.airflow_stack import AirflowStack, airflow_stack
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows
from tests.stack import airflow_connections, service_folder

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

RELAY = "outbox_watched_relay"


def _runs(stack: AirflowStack) -> list[tuple[str, str]]:
    return [
        (r[0], r[1]) for r in stack.metadata("SELECT run_id, state FROM dag_run WHERE dag_id = %s", RELAY)
    ]


def _wait_for_watcher(stack: AirflowStack, seconds: float = 120) -> None:
    """The asset watcher's trigger is registered and a triggerer runs it."""
    deadline = time.monotonic() + seconds
    while not stack.metadata(
        "SELECT 1 FROM trigger WHERE classpath LIKE %s AND triggerer_id IS NOT NULL", "%OutboxRowsTrigger"
    ):
        assert time.monotonic() < deadline, "no triggerer runs the OutboxRowsTrigger"
        time.sleep(1)


def _sent_within(engine: Engine, count: int, seconds: float) -> float:
    """Seconds until ``count`` rows are SENT (fails after ``seconds``: the old wait-until-drained logic
    left a burst that came in right after a run for the trigger's grace period)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        with engine.connect() as conn:
            if (
                conn.execute(text("SELECT COUNT(*) FROM outbox_message WHERE status = 'SENT'")).scalar()
                == count
            ):
                return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{count} rows were not SENT within {seconds:g}s")


def test_rows_start_the_relay_and_an_empty_table_costs_no_runs(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("watched")
    create_topics(topic)
    services = service_folder(
        tmp_path, "watched",
        f"topic: {topic}\nschedule: '@rows'\nwatch_seconds: 1\nconfirm_schedule: null\nretention: null\n"
        "start_paused: false\n",
    )  # fmt: skip
    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(db_engine)}
    with airflow_stack(tmp_path / "airflow", env, triggerer=True) as stack:
        stack.wait_for_dag(RELAY)
        _wait_for_watcher(stack)
        time.sleep(10)
        assert _runs(stack) == []  # an empty table: no run at all
        written: list[str] = []
        for burst in range(3):  # each burst right after the previous one was sent: steady traffic
            written += insert_rows(db_engine, topic, ["a", "b", "c"][: burst + 1])
            _sent_within(db_engine, len(written), 45)  # well inside the trigger's 60 s grace
        time.sleep(15)
        runs = _runs(stack)
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(written)
    assert 3 <= len(runs) <= 6 and all(state == "success" for _, state in runs), runs  # a run per burst (+1)
