"""The backfill DAG on a real scheduler: a 6-hour window drained by one run (republishing its SENT rows
without touching their relay_run_id), and a second run cancelled half-way by marking it failed: one
failed run, nothing lost, the locks released, the rest left NEW for the scheduled relay."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.store.outbox import OutboxStore
from tests.airflow.airflow_stack import airflow_stack
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import run_relay, sent_by, statuses
from tests.stack import airflow_connections, service_folder
from tests.waiting import wait_until

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

DAG_ID = "outbox_billing_backfill"
DAY = datetime(2026, 11, 20)


def _insert(
    engine: Engine,
    topic: str,
    count: int,
    start: datetime,
    hours: float,
    status: str = "NEW",
    keys: str = "k",
) -> None:
    """``count`` rows of 40 keys, created evenly over ``hours`` from ``start``."""
    step = timedelta(hours=hours) / count
    rows = [
        {"m": str(uuid.uuid4()), "k": f"{keys}{i % 40}", "t": topic, "p": json.dumps({"n": i}), "c": start + i * step,
         "s": status, "r": "scheduled__original" if status == "SENT" else None}
        for i in range(count)
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO outbox_message (message_id, aggregate_id, event_type, topic, payload, created_at, "
                "status, relay_run_id) VALUES (:m, :k, 'Evt', :t, :p, :c, :s, :r)"
            ),
            rows,
        )


def _count(engine: Engine, where: str, **params: Any) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text(f"SELECT COUNT(*) FROM outbox_message WHERE {where}"), params).scalar_one()
        )


def _locks_held(engine: Engine, config: ServiceConfig) -> list[Any]:
    store = OutboxStore(config)
    with engine.connect() as conn:
        return [store.lock.holder(conn), store.backfill_lock.holder(conn)]


@pytest.mark.slow
def test_one_run_drains_a_six_hour_window_and_a_cancelled_run_loses_nothing(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("backfill")
    create_topics(topic)
    services = service_folder(
        tmp_path,
        "billing",
        f"topic: {topic}\nschedule: null\nconfirm_schedule: null\nretention: null\nbatch_size: 100\n"
        "start_paused: false\n",
    )
    outage = DAY.replace(hour=1)
    _insert(db_engine, topic, 3000, outage, 6)  # created during a 6-hour outage, never relayed
    _insert(db_engine, topic, 30, outage, 6, status="SENT")  # sent, but the confirmations were lost
    _insert(db_engine, topic, 10, DAY.replace(hour=8), 1)  # after the window: not the backfill's
    cancelled_window = DAY - timedelta(days=1)
    # Other keys: a window's rows wait behind older unpublished rows of their key, and these are older.
    _insert(db_engine, topic, 3000, cancelled_window, 1, keys="other")

    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(db_engine)}
    with airflow_stack(tmp_path / "airflow", env) as stack:
        stack.wait_for_dag(DAG_ID)
        run = stack.trigger(DAG_ID, {"since": "2026-11-20T01:00", "until": "2026-11-20T07:00",
                               "reason": "INC-9 broker outage", "republish": True})  # fmt: skip
        assert stack.wait_for_run(DAG_ID, run) == "success"
        result = stack.metadata(
            "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = 'backfill' "
            "AND key = 'return_value'", DAG_ID, run,
        )  # fmt: skip

        # Cancel a second, paced backfill half-way: mark its run failed, as an operator would in the grid.
        slow = stack.trigger(DAG_ID, {"since": "2026-11-19T00:00", "until": "2026-11-19T01:00",
                                "reason": "paced", "max_rows_per_second": 100})  # fmt: skip
        window = {"a": cancelled_window, "b": cancelled_window + timedelta(hours=1)}

        def sent_of_paced_window() -> int:
            return _count(db_engine, "status = 'SENT' AND created_at >= :a AND created_at < :b", **window)

        wait_until(lambda: sent_of_paced_window() >= 200, "the paced backfill to get going", 240, 0.5)
        # It is still sending when it is cancelled: time it sending 100 more rows, right before the cancel.
        paced_from, sent_then = time.monotonic(), sent_of_paced_window()
        wait_until(
            lambda: sent_of_paced_window() >= sent_then + 100, "the paced backfill to send on", 60, 0.1
        )
        hundred_rows_seconds = time.monotonic() - paced_from
        stack.api("PATCH", f"/dags/{DAG_ID}/dagRuns/{slow}", json={"state": "failed"})
        assert stack.wait_for_task(DAG_ID, slow, "backfill", {"failed"}, 60) == "failed"
        # Airflow stops the task process at its next heartbeat; the database frees its locks with it.
        config = ServiceConfig.model_validate({"service": "billing", "topic": topic})
        deadline = time.monotonic() + 60
        while _locks_held(db_engine, config) != [None, None]:
            assert time.monotonic() < deadline, f"locks still held: {_locks_held(db_engine, config)}"
            time.sleep(0.5)
        sent_when_cancelled = _count(db_engine, "status = 'SENT' AND created_at < '2026-11-20'")
        # For three times as long as the live backfill took to send 100 rows (and at least 3 s), not one
        # more row is sent: the task is really gone, not merely slow.
        quiet_until, sent_later = time.monotonic() + max(3.0, 3 * hundred_rows_seconds), sent_when_cancelled
        while time.monotonic() < quiet_until:
            sent_later = _count(db_engine, "status = 'SENT' AND created_at < '2026-11-20'")
            assert sent_later == sent_when_cancelled, "the cancelled backfill is still sending"
            time.sleep(0.2)
        runs = stack.metadata("SELECT run_id, state FROM dag_run WHERE dag_id = %s ORDER BY id", DAG_ID)
        relay_runs = stack.metadata("SELECT COUNT(*) FROM dag_run WHERE dag_id = 'outbox_billing_relay'")

    planned = result[0][0] if isinstance(result[0][0], dict) else json.loads(result[0][0])
    assert (planned["published"], planned["republished"], planned["stopped_because"]) == (3000, 30, "drained")
    assert planned["rows_in_window"] == {"NEW": 3000, "SENT": 30}
    assert runs == [(run, "success"), (slow, "failed")] and relay_runs == [(0,)]  # one run per backfill
    sent = {m for m, s in statuses(db_engine).items() if s == "SENT"}
    assert sum(1 for m, r in sent_by(db_engine, config).items() if r == run and m in sent) == 3000
    assert _count(db_engine, "relay_run_id = 'scheduled__original'") == 30  # never overwritten
    assert _count(db_engine, "status = 'NEW' AND created_at >= '2026-11-20 08:00'") == 10
    with db_engine.connect() as conn:
        history = conn.execute(text("SELECT action, run_id, reason FROM outbox_relay_replay")).all()
    assert {tuple(h) for h in history} == {("republish", run, "INC-9 broker outage")} and len(history) == 30

    # Cancelled: the task is gone, and with it both locks; what it sent stays SENT, the rest is NEW.
    assert sent_later == sent_when_cancelled < 3000
    # The scheduled relay (here one run by hand) sends the rest; every row of both windows is on the topic.
    run_relay(config, db_engine)
    assert _count(db_engine, "status = 'NEW' AND created_at < '2026-11-20 07:00'") == 0
    with db_engine.connect() as conn:
        expected = set(
            conn.execute(
                text("SELECT message_id FROM outbox_message WHERE created_at < '2026-11-20 07:00'")
            ).scalars()
        )
    assert expected <= {r.headers["outbox-message-id"] for r in read_all(topic)}
