"""The replay DAG on a real scheduler + triggerer + api-server: a dry run changes nothing, a small replay
runs straight away, a large one waits in Airflow's Required Actions until a human approves it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, bindparam, text

from tests.airflow.airflow_stack import airflow_stack
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, statuses
from tests.stack import airflow_connections, service_folder

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

DAG_ID = "outbox_billing_replay"


def _history(engine: Engine) -> list[tuple[str, str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT message_id, action, run_id, reason FROM outbox_relay_replay ORDER BY id")
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def _requested_by(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text("SELECT requested_by FROM outbox_relay_replay"))}


@pytest.mark.slow
def test_replay_dag_dry_run_direct_run_and_approval_gate(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("replay_dag")
    create_topics(topic, f"{topic}.results")
    services = service_folder(
        tmp_path,
        "billing",
        f"topic: {topic}\nschedule: null\nconfirm_schedule: null\nretention: null\n"
        f"confirmation: {{topic: {topic}.results}}\nreplay_approval_above_rows: 2\nstart_paused: false\n",
    )
    a, b, c, d = insert_rows(db_engine, topic, ["a", "b", "c", "d"])
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE outbox_message SET status = 'FAILED', attempts = 5, last_error = 'bad schema' "
                "WHERE message_id IN :m"
            ).bindparams(bindparam("m", expanding=True)),
            {"m": [a, b, c, d]},
        )
    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(db_engine)}
    with airflow_stack(tmp_path / "airflow", env, triggerer=True) as stack:
        stack.wait_for_dag(DAG_ID)
        stack.api("PATCH", f"/dags/{DAG_ID}", json={"is_paused": False})

        dry = stack.trigger(DAG_ID, {"reason": "look first", "dry_run": True})
        assert stack.wait_for_run(DAG_ID, dry) == "success"
        for task in ("approve", "replay"):
            assert stack.wait_for_task(DAG_ID, dry, task, {"skipped"}, 5) == "skipped"
        assert set(statuses(db_engine).values()) == {"FAILED"} and _history(db_engine) == []

        small = stack.trigger(DAG_ID, {"reason": "key a only", "key": "a"})  # 1 row <= 2: no approval
        assert stack.wait_for_run(DAG_ID, small) == "success"
        assert statuses(db_engine)[a] == "NEW"
        assert _history(db_engine) == [(a, "requeue", small, "key a only")]

        large = stack.trigger(DAG_ID, {"reason": "all the rest"})  # 3 rows > 2: a human must approve
        stack.wait_for_task(DAG_ID, large, "approve", {"awaiting_input", "deferred"}, 300)
        # Answer only once the scheduler has seen the pausing attempt end: an answer that arrives before
        # (no human is that fast) makes Airflow 3.3 mark the task up_for_retry and ask again.
        finished = f"TaskInstance Finished: dag_id={DAG_ID}, task_id=approve, run_id={large},"
        stack.wait_for_log("scheduler", finished, 300)
        assert [statuses(db_engine)[m] for m in (b, c, d)] == ["FAILED"] * 3  # nothing changed yet
        detail = stack.api("GET", f"/dags/{DAG_ID}/dagRuns/{large}/taskInstances/approve/-1/hitlDetails")
        body = str(detail["body"])  # what the Required Actions view shows: the summary first
        assert body.startswith(
            "**Replay 3 row(s) of outbox service `billing`** (table `outbox_message`), asked by"
        )
        assert "Reason: all the rest" in body and "| Rows matched | **3**: 3 failed: requeued" in body
        assert f"| By topic | {topic} 3 |" in body and "| b | " in body and "| bad schema |" in body
        assert "[failed rows on the Outbox page](/outbox/services/billing?kind=failed)" in body
        stack.api(
            "PATCH",
            f"/dags/{DAG_ID}/dagRuns/{large}/taskInstances/approve/-1/hitlDetails",
            json={"chosen_options": ["Approve"]},
        )
        assert stack.wait_for_run(DAG_ID, large) == "success"
        plan = stack.metadata(
            "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = 'plan' AND key = 'return_value'",
            DAG_ID,
            large,
        )
    assert [statuses(db_engine)[m] for m in (b, c, d)] == ["NEW"] * 3
    assert [(h[0], h[2]) for h in _history(db_engine)[1:]] == [(b, large), (c, large), (d, large)]
    # The user who triggered the runs, as Airflow records it (the all-admins user of simple auth).
    assert _requested_by(db_engine) == {"Anonymous"}
    planned = plan[0][0] if isinstance(plan[0][0], dict) else json.loads(plan[0][0])
    assert planned["matched"] == 3 and planned["dry_run"] is True
