"""A real `airflow backfill create` over a past window, executed by a running scheduler."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.airflow.airflow_stack import AirflowStack, airflow_stack
from tests.conftest import BOOTSTRAP
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, statuses

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def _wait_for_backfill_runs(
    stack: AirflowStack, dag_id: str, count: int, seconds: float
) -> list[tuple[str, str]]:
    deadline = time.monotonic() + seconds
    runs: list[tuple[str, str]] = []
    while time.monotonic() < deadline:
        runs = [
            (str(run_id), str(state))
            for run_id, state in stack.metadata(
                "SELECT run_id, state FROM dag_run WHERE dag_id = %s AND run_id LIKE 'backfill%%'", dag_id
            )
        ]
        if len([r for r in runs if r[1] in {"success", "failed"}]) >= count:
            return runs
        time.sleep(2)
    raise AssertionError(f"backfill runs of {dag_id} did not finish in {seconds}s: {runs}")


@pytest.mark.slow
def test_backfill_republishes_unconfirmed_rows_of_its_window_only(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("bf")
    create_topics(topic)
    services = tmp_path / "services"
    services.mkdir()
    (services / "billing.yaml").write_text(
        f"topic: {topic}\nschedule: '0 * * * *'\nconfirm_schedule: null\nretention: null\nbatch_size: 50\n"
    )
    new_in, sent_in, sent_out, new_out = (insert_rows(db_engine, topic, [k])[0] for k in "abcd")
    with db_engine.begin() as conn:
        for mid, created, status in [
            (new_in, "2026-11-20 01:30:00", "NEW"),
            (sent_in, "2026-11-20 02:20:00", "SENT"),
            (sent_out, "2026-11-20 05:00:00", "SENT"),
            (new_out, "2026-11-20 05:00:00", "NEW"),
        ]:
            conn.execute(
                text(
                    "UPDATE outbox_message SET created_at = :c, status = :s, "
                    "relay_run_id = IF(:s = 'SENT', 'scheduled__original', NULL) WHERE message_id = :m"
                ),
                {"c": created, "s": status, "m": mid},
            )
    url = db_engine.url.render_as_string(hide_password=False).replace("mysql+pymysql://", "mysql://")
    env = {
        "OUTBOX_RELAY_SERVICES_DIR": str(services),
        "AIRFLOW_CONN_OUTBOX_DB": url,
        "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": BOOTSTRAP}}
        ),
    }
    with airflow_stack(tmp_path / "airflow", env) as stack:
        stack.wait_for_dag("outbox_billing_relay")
        assert stack.cli("dags", "unpause", "outbox_billing_relay").returncode == 0  # paused DAGs run nothing
        created = stack.cli(
            "backfill", "create", "--dag-id", "outbox_billing_relay",
            "--from-date", "2026-11-20T01:00:00+00:00", "--to-date", "2026-11-20T02:00:00+00:00",
            "--max-active-runs", "1", "--dag-run-conf", '{"republish": true}',
        )  # fmt: skip
        assert created.returncode == 0, created.stdout + created.stderr
        runs = _wait_for_backfill_runs(stack, "outbox_billing_relay", 2, 240)
        assert {state for _, state in runs} == {"success"}, runs

    status = statuses(db_engine)
    assert [status[m] for m in (new_in, sent_in, sent_out)] == ["SENT"] * 3
    # new_out lies outside the window: only the scheduled run of the latest hour relays it, and only when
    # it did not overlap a backfill run (a scheduled run that finds the relay lock busy does nothing).
    assert status[new_out] in {"NEW", "SENT"}
    replayed = {
        r.headers["outbox-message-id"] for r in read_all(topic) if r.headers.get("outbox-replay") == "true"
    }
    # The window [01:00, 03:00) holds sent_in (and new_in, if a scheduled run sent it before the backfill).
    assert sent_in in replayed and sent_out not in replayed and new_out not in replayed
    assert replayed <= {sent_in, new_in}
    with db_engine.connect() as conn:
        run_of = dict(conn.execute(text("SELECT message_id, relay_run_id FROM outbox_message")).all())
        history = conn.execute(
            text("SELECT message_id, action, run_id, reason FROM outbox_relay_replay")
        ).all()
    # The run that first sent it is kept; the backfill run that re-published it is in the replay history.
    assert run_of[sent_in] == "scheduled__original"
    assert any(
        m == sent_in
        and a == "republish"
        and r.startswith("backfill__")
        and why.startswith("backfill republish of [")
        for m, a, r, why in history
    )
