"""Event-driven DAGs on a real scheduler and triggerer. A service with `schedule: "@rows"` gets no run
while its table is empty; rows written start its relay within seconds (the triggerer's probe yields an
asset event the relay DAG is scheduled on), and once drained the trigger waits for new rows again. With
`confirm_schedule: "@messages"` its confirmations are ingested the same way: no run while no
confirmation waits in the topic, a run within seconds of one arriving."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.airflow.airflow_stack import AirflowStack, airflow_stack
from tests.integration.kafka_tools import create_topics, read_all, send
from tests.integration.outbox_rows import insert_rows, wait_for_status
from tests.stack import airflow_connections, service_folder

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

RELAY = "outbox_watched_relay"


def _runs(stack: AirflowStack, dag_id: str = RELAY) -> list[tuple[str, str]]:
    return [
        (r[0], r[1]) for r in stack.metadata("SELECT run_id, state FROM dag_run WHERE dag_id = %s", dag_id)
    ]


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
        stack.wait_for_watcher("OutboxRowsTrigger")
        time.sleep(10)
        assert _runs(stack) == []  # an empty table: no run at all
        written: list[str] = []
        for burst in range(3):  # each burst right after the previous one was sent: steady traffic
            written += insert_rows(db_engine, topic, ["a", "b", "c"][: burst + 1])
            # well inside the trigger's 60 s grace (the old wait-until-drained logic left a burst that came
            # in right after a run for the grace period)
            wait_for_status(db_engine, "SENT", len(written), 45)
        time.sleep(15)
        runs = _runs(stack)
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(written)
    assert 3 <= len(runs) <= 6 and all(state == "success" for _, state in runs), runs  # a run per burst (+1)


def test_confirmations_start_their_ingest_and_an_empty_topic_costs_no_runs(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("acked")
    answers = f"{topic}.results"
    create_topics(topic, answers)
    services = service_folder(
        tmp_path, "acked",
        f"topic: {topic}\nschedule: '@rows'\nconfirmation: {{topic: {answers}}}\nconfirm_schedule: '@messages'\n"
        "watch_seconds: 1\nretention: null\nstart_paused: false\n",
    )  # fmt: skip
    confirmations = "outbox_acked_confirmations"
    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(db_engine)}
    with airflow_stack(tmp_path / "airflow", env, triggerer=True) as stack:
        stack.wait_for_dag(confirmations)
        stack.wait_for_watcher("ConfirmationsWaitingTrigger")
        stack.wait_for_watcher("OutboxRowsTrigger")
        written = insert_rows(db_engine, topic, ["a", "b", "c"])
        wait_for_status(db_engine, "SENT", 3, 45)
        time.sleep(8)
        assert _runs(stack, confirmations) == []  # sent, but no confirmation waits: no ingest run
        for burst in (written[:2], written[2:]):  # the second right after the first was ingested
            send(
                answers, [(None, json.dumps({"message_id": m, "status": "SUCCESS"}).encode()) for m in burst]
            )
            wait_for_status(db_engine, "CONFIRMED", written.index(burst[-1]) + 1, 45)
        time.sleep(8)
        runs = _runs(stack, confirmations)
    assert 2 <= len(runs) <= 4 and all(state == "success" for _, state in runs), runs  # a run per burst (+1)
