"""The event-driven relay's safety net on a real scheduler: with its triggerer killed (SIGKILL, as a crash
of its trigger runner leaves it), rows written afterwards are still relayed, by the DAG's fallback cron
(``watch_fallback_schedule``, every minute here), not by an asset event. Before the kill, the same DAG
(asset or cron) is started by its trigger: a row is relayed by an asset-triggered run."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from tests.airflow.airflow_stack import AirflowStack, watched_stack
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, wait_for_status
from tests.waiting import wait_until

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

RELAY = "outbox_orphan_relay"
FINISHED = {"success", "failed"}


def test_rows_reach_sent_on_the_fallback_cron_when_the_triggerer_is_dead(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("orphan")
    create_topics(topic)
    with watched_stack(
        db_engine, tmp_path, "orphan", topic, RELAY, watch_fallback_schedule="'* * * * *'"
    ) as stack:
        # no cron run under way (one could take the row before the trigger's next look, a second away)
        wait_until(lambda: all(run[2] in FINISHED for run in _runs(stack)), "no relay run under way", 90, 1)
        written = insert_rows(db_engine, topic, ["live"])
        wait_until(lambda: _runs(stack, "asset_triggered"), "an asset-triggered run", timeout=60, interval=1)
        wait_for_status(db_engine, "SENT", len(written), 60)
        triggerer = stack.processes[3]  # api-server, scheduler, dag-processor, triggerer
        assert triggerer.args[1:] == ["triggerer"], triggerer.args
        os.killpg(triggerer.pid, signal.SIGKILL)  # the triggerer and its trigger runner, no goodbye
        assert triggerer.wait(30) == -signal.SIGKILL
        killed_at = datetime.now(UTC)
        written += insert_rows(db_engine, topic, ["a", "b"])
        try:
            wait_for_status(db_engine, "SENT", len(written), 150)  # the next minute's run, started and done
            runs = wait_until(
                lambda: [run for run in _runs(stack) if run[3] >= killed_at and run[2] == "success"],
                "a relay run queued after the kill to succeed",
                timeout=60,
                interval=1,
            )
        except AssertionError as failed:
            raise AssertionError(f"{failed}\n{stack.diagnosis('outbox_orphan')}") from None
        after_kill = [run for run in _runs(stack) if run[3] >= killed_at]
    assert {run_type for _, run_type, *_ in after_kill} == {"scheduled"}, after_kill  # no asset event
    assert all(run_id.startswith("scheduled__") for run_id, *_ in runs), runs
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(written)


def _runs(stack: AirflowStack, run_type: str | None = None) -> list[tuple[Any, ...]]:
    """The relay's queued runs (run id, type, state, queued at), of ``run_type`` if given."""
    return [
        run
        for run in stack.metadata(
            "SELECT run_id, run_type, state, queued_at FROM dag_run WHERE dag_id = %s AND queued_at IS NOT NULL",
            RELAY,
        )
        if run_type is None or run[1] == run_type
    ]
