"""The event-driven relay's safety net on a real scheduler: with its triggerer killed (SIGKILL, as a crash
of its trigger runner leaves it), rows written afterwards are still relayed, by the DAG's fallback cron
(``watch_fallback_schedule``, every minute here), not by an asset event. Before the kill the table is
empty, so the trigger never fires: every run is a cron run, and the one that started after the rows were
written sent them."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.airflow.airflow_stack import airflow_stack
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, wait_for_status
from tests.stack import airflow_connections, service_folder
from tests.waiting import wait_until

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

RELAY = "outbox_orphan_relay"


def test_rows_reach_sent_on_the_fallback_cron_when_the_triggerer_is_dead(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("orphan")
    create_topics(topic)
    services = service_folder(
        tmp_path, "orphan",
        f"topic: {topic}\nschedule: '@rows'\nwatch_fallback_schedule: '* * * * *'\nwatch_seconds: 1\n"
        "confirm_schedule: null\nretention: null\nstart_paused: false\n",
    )  # fmt: skip
    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(db_engine)}
    with airflow_stack(tmp_path / "airflow", env, triggerer=True) as stack:
        stack.wait_for_dag(RELAY)
        stack.wait_for_watcher("OutboxRowsTrigger")
        triggerer = stack.processes[3]  # api-server, scheduler, dag-processor, triggerer
        assert triggerer.args[1:] == ["triggerer"], triggerer.args
        os.killpg(triggerer.pid, signal.SIGKILL)  # the triggerer and its trigger runner, no goodbye
        assert triggerer.wait(30) == -signal.SIGKILL
        written_at = datetime.now(UTC)
        written = insert_rows(db_engine, topic, ["a", "b"])
        try:
            wait_for_status(db_engine, "SENT", len(written), 150)  # the next minute's run, started and done
            runs = wait_until(
                lambda: [
                    run
                    for run in stack.metadata(
                        "SELECT run_id, run_type, state, queued_at FROM dag_run WHERE dag_id = %s", RELAY
                    )
                    if run[3] is not None and run[3] >= written_at and run[2] == "success"
                ],
                "a relay run queued after the rows were written to succeed",
                timeout=60,
                interval=1,
            )
        except AssertionError as failed:
            raise AssertionError(f"{failed}\n{stack.diagnosis('outbox_orphan')}") from None
        every_run = stack.metadata("SELECT run_id, run_type FROM dag_run WHERE dag_id = %s", RELAY)
    assert {run_type for _, run_type in every_run} == {"scheduled"}, every_run  # none asset-triggered
    assert all(run_id.startswith("scheduled__") for run_id, *_ in runs), runs
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(written)
