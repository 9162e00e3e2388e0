"""A scheduled relay that finds its table's lock held relays nothing; run after run, that must turn red,
naming the holder (a wedged session would otherwise give endless green runs that relay nothing)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.store.outbox import OutboxStore
from outbox_relay_airflow.tasks import relay as tasks
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, wait_for_status

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def _busy_row(engine: Engine, service: str) -> Any:
    with engine.connect() as conn:
        return conn.execute(
            text("SELECT busy_runs, holder FROM outbox_relay_lock_busy WHERE service = :s"), {"s": service}
        ).one_or_none()


@pytest.mark.usefixtures("airflow_connections_env")
def test_runs_fail_after_n_lock_busy_runs_in_a_row_counted_in_the_database(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    """The count lives in the outbox database, one row per service: nothing of Airflow's (no XCom of
    earlier runs, whose shape changes with their number) is read."""
    from outbox_relay_airflow.compat import AirflowFailException

    topic = topic_name("wedged")
    create_topics(topic)
    insert_rows(db_engine, topic, ["a"])
    (tmp_path / "wedged.yaml").write_text(
        f"topic: {topic}\nrelay_lock_wait_seconds: 0\nrelay_lock_busy_runs_to_fail: 3\n"
    )
    config = ServiceConfig.model_validate({"service": "wedged", "topic": topic})

    def run() -> dict[str, Any]:
        return tasks.run_relay("wedged", {"run_id": "scheduled__x"}, tmp_path)

    with db_engine.connect() as holder:
        assert OutboxStore(config).lock.acquire(holder, 0)
        holder_id = holder.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        first = run()
        assert first["lock_busy_runs"] == 1 and first["published"] == 0
        assert run()["lock_busy_runs"] == 2
        assert tuple(_busy_row(db_engine, "wedged")) == (2, holder_id)
        with pytest.raises(AirflowFailException, match=f"3 relay runs in a row .* connection id {holder_id}"):
            run()
        OutboxStore(config).lock.release(holder)
    drained = run()  # the holder is gone: the count starts again
    assert drained["published"] == 1 and drained["lock_busy_runs"] == 0
    assert _busy_row(db_engine, "wedged") is None


@pytest.mark.usefixtures("airflow_connections_env")
def test_without_the_busy_run_table_a_busy_run_is_logged_not_failed(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    topic = topic_name("old_schema")
    create_topics(topic)
    (tmp_path / "old.yaml").write_text(
        f"topic: {topic}\nrelay_lock_wait_seconds: 0\nrelay_lock_busy_runs_to_fail: 1\n"
    )
    with db_engine.begin() as conn:
        conn.execute(text("DROP TABLE outbox_relay_lock_busy"))
    config = ServiceConfig.model_validate({"service": "old", "topic": topic})
    with db_engine.connect() as holder:
        assert OutboxStore(config).lock.acquire(holder, 0)
        stats = tasks.run_relay("old", {"run_id": "scheduled__z"}, tmp_path)
        OutboxStore(config).lock.release(holder)
    assert (
        stats["stopped_because"] == "another relay of this table is running"
        and stats["lock_busy_runs"] is None
    )
    assert (
        "outbox_relay_lock_busy is missing" in caplog.text
        and "outbox-relay ddl --shared-only --apply" in caplog.text
    )
    assert tasks.run_relay("old", {"run_id": "scheduled__z2"}, tmp_path)["lock_busy_runs"] == 0


@pytest.mark.usefixtures("airflow_connections_env")
def test_runs_that_meet_a_backfill_are_not_counted_as_wedged(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    topic = topic_name("backfilling")
    create_topics(topic)
    (tmp_path / "busy.yaml").write_text(
        f"topic: {topic}\nrelay_lock_wait_seconds: 0\nrelay_lock_busy_runs_to_fail: 1\n"
    )
    config = ServiceConfig.model_validate({"service": "busy", "topic": topic})
    store = OutboxStore(config)
    with db_engine.connect() as backfill:  # a backfill in one of its chunks holds both locks
        assert store.backfill_lock.acquire(backfill, 0) and store.lock.acquire(backfill, 0)
        stats = tasks.run_relay("busy", {"run_id": "scheduled__y"}, tmp_path)
        store.lock.release(backfill)
        store.backfill_lock.release(backfill)
    assert stats["stopped_because"] == "a backfill of this table is running" and stats["lock_busy_runs"] == 0


@pytest.mark.slow
def test_on_a_real_scheduler_the_third_busy_run_in_a_row_fails_naming_the_holder(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    """Real scheduled runs (`@continuous`: one after the other, as fast as they finish) while another session
    holds the relay lock: runs 1 and 2 relay nothing and stay green, run 3 fails at once (no retry), naming
    the holder; once the holder lets go the next run relays and the count is gone."""
    from tests.airflow.airflow_stack import airflow_stack
    from tests.stack import airflow_connections, service_folder

    topic = topic_name("held")
    create_topics(topic)
    written = insert_rows(db_engine, topic, ["a", "b"])
    services = service_folder(
        tmp_path,
        "held",
        f"topic: {topic}\nschedule: '@continuous'\nrelay_lock_wait_seconds: 0\nrelay_lock_busy_runs_to_fail: 3\n"
        "confirm_schedule: null\nretention: null\nstart_paused: false\n",
    )
    config = ServiceConfig.model_validate({"service": "held", "topic": topic})
    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(db_engine)}
    with db_engine.connect() as holder:
        assert OutboxStore(config).lock.acquire(holder, 0)
        holder_id = holder.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        with airflow_stack(tmp_path / "airflow", env) as stack:

            def runs() -> list[tuple[str, str]]:
                return [
                    (str(r[0]), str(r[1]))
                    for r in stack.metadata(
                        "SELECT run_id, state FROM dag_run WHERE dag_id = 'outbox_held_relay' ORDER BY id"
                    )
                ]

            deadline = time.monotonic() + 420
            while not any(state == "failed" for _, state in runs()):
                assert time.monotonic() < deadline, f"no relay run failed: {runs()}"
                time.sleep(2)
            seen = runs()
            failed_at = [state for _, state in seen].index("failed")
            assert [state for _, state in seen[:failed_at]] == ["success", "success"], seen
            failed_run = seen[failed_at][0]
            tries = stack.metadata(
                "SELECT state, try_number FROM task_instance WHERE dag_id = 'outbox_held_relay' AND run_id = %s "
                "AND task_id = 'relay'",
                failed_run,
            )
            assert tries == [("failed", 1)], tries  # not retried: the runs in a row are the finding
            logs = "".join(
                p.read_text(errors="replace")
                for p in (tmp_path / "airflow" / "logs").rglob("*.log")
                if f"run_id={failed_run}" in str(p) and "task_id=relay" in str(p)
            )
            assert (
                f"3 relay runs in a row found the relay lock of outbox_message held (holder: MySQL connection id "
                f"{holder_id})" in logs
            ), logs[-3000:]
            OutboxStore(config).lock.release(holder)
            wait_for_status(db_engine, "SENT", len(written), 180)
    assert _busy_row(db_engine, "held") is None
