"""Event-driven DAGs on a real scheduler and triggerer. A service with `schedule: "@rows"` gets no run
while its table is empty; rows written start its relay within seconds (the triggerer's probe yields an
asset event the relay DAG is scheduled on), and once drained the trigger waits for new rows again. With
`confirm_schedule: "@messages"` its confirmations are ingested the same way: no run while no
confirmation waits in the topic, a run within seconds of one arriving.

"No run" is only asserted over a quiet period in which the trigger is proven to be watching: it starts
right after the trigger started the runs that relayed (or ingested) a burst, and it ends with another burst
that must start a run within seconds. A trigger that started late, or not at all, fails the test instead of
passing it. Counts are read once every run has finished, and any run that appears later, during the quiet
period, fails the test. The fallback cron (``watch_fallback_schedule``) is off here: these tests are about
the triggers alone, and an hourly run landing in a quiet period would fail them (test_watch_fallback.py
tests it)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.airflow.airflow_stack import AirflowStack, watched_stack
from tests.integration.kafka_tools import create_topics, read_all, send
from tests.integration.outbox_rows import insert_rows, wait_for_status
from tests.waiting import wait_until

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

RELAY = "outbox_watched_relay"
QUIET_SECONDS = 10  # ten looks of a trigger watching every second
FINISHED = {"success", "failed"}


def _runs(stack: AirflowStack, dag_id: str = RELAY) -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in stack.metadata("SELECT run_id, state FROM dag_run WHERE dag_id = %s ORDER BY id", dag_id)
    ]


def _finished_runs(stack: AirflowStack, dag_id: str) -> list[tuple[str, str]]:
    """The DAG's runs, once there is at least one and none is still queued or running."""
    return wait_until(
        lambda: (runs := _runs(stack, dag_id)) and all(state in FINISHED for _, state in runs) and runs,
        f"every run of {dag_id} to finish",
        timeout=120,
        interval=1,
    )


def _no_new_run(stack: AirflowStack, dag_id: str, runs: list[tuple[str, str]]) -> None:
    """For QUIET_SECONDS, ``dag_id`` gets no run beyond ``runs`` (checked every second, fails at once)."""
    deadline = time.monotonic() + QUIET_SECONDS
    while time.monotonic() < deadline:
        assert _runs(stack, dag_id) == runs, f"a run of {dag_id} while nothing waited: {_runs(stack, dag_id)}"
        time.sleep(1)


def test_rows_start_the_relay_and_an_empty_table_costs_no_runs(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("watched")
    create_topics(topic)
    with watched_stack(db_engine, tmp_path, "watched", topic, RELAY, watch_fallback_schedule="null") as stack:
        written: list[str] = []
        for burst in range(3):  # each burst right after the previous one was sent: steady traffic
            written += insert_rows(db_engine, topic, ["a", "b", "c"][: burst + 1])
            # well inside the trigger's 60 s grace (the old wait-until-drained logic left a burst that came
            # in right after a run for the grace period)
            wait_for_status(db_engine, "SENT", len(written), 45)
        runs = _finished_runs(stack, RELAY)
        # a run per burst (+1)
        assert 3 <= len(runs) <= 6 and all(state == "success" for _, state in runs), runs
        # Drained: the table holds no NEW row, and the trigger that just started those runs gets no other.
        _no_new_run(stack, RELAY, runs)
        # It was still watching: a row written at the end of the quiet period is relayed within seconds.
        written += insert_rows(db_engine, topic, ["d"])
        wait_for_status(db_engine, "SENT", len(written), 45)
        after = _finished_runs(stack, RELAY)
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(written)
    # a run for the last row (+1)
    assert after[: len(runs)] == runs and 1 <= len(after) - len(runs) <= 2, after
    assert all(state == "success" for _, state in after), after


def test_confirmations_start_their_ingest_and_an_empty_topic_costs_no_runs(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("acked")
    answers = f"{topic}.results"
    create_topics(topic, answers)
    confirmations = "outbox_acked_confirmations"
    with watched_stack(
        db_engine, tmp_path, "acked", topic, confirmations, ("ConfirmationsWaitingTrigger", "OutboxRowsTrigger"),
        confirmation=f"{{topic: {answers}}}", confirm_schedule="'@messages'", watch_fallback_schedule="null",
    ) as stack:  # fmt: skip
        written = insert_rows(db_engine, topic, ["a", "b", "c"])
        wait_for_status(db_engine, "SENT", 3, 45)
        runs: list[tuple[str, str]] = []
        for burst in (written[:1], written[1:2], written[2:]):  # each right after the previous was ingested
            send(
                answers, [(None, json.dumps({"message_id": m, "status": "SUCCESS"}).encode()) for m in burst]
            )
            wait_for_status(db_engine, "CONFIRMED", written.index(burst[-1]) + 1, 45)
            ingested = _finished_runs(stack, confirmations)
            assert ingested[: len(runs)] == runs and 1 <= len(ingested) - len(runs) <= 2, ingested  # (+1)
            runs = ingested
            # Everything ingested: no confirmation waits, and the trigger that just started that run (and,
            # for all but the last period, starts the next burst's run right after it) asks for no other.
            _no_new_run(stack, confirmations, runs)
    assert all(state == "success" for _, state in runs), runs
