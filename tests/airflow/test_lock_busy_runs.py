"""A scheduled relay that finds its table's lock held relays nothing; run after run, that must turn red,
naming the holder (a wedged session would otherwise give endless green runs that relay nothing)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.store.outbox import OutboxStore
from outbox_relay_airflow import tasks
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


class FakeTaskInstance:
    """Just what the relay task reads: its task id and the XCom of the previous run."""

    task_id = "relay"

    def __init__(self, previous: Any) -> None:
        self.previous = previous
        self.pulled_with: dict[str, Any] = {}

    def xcom_pull(self, **kwargs: Any) -> Any:
        self.pulled_with = kwargs
        return self.previous


@pytest.mark.usefixtures("airflow_connections_env")
def test_scheduled_runs_fail_after_n_lock_busy_runs_in_a_row(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    tmp_path: Path,
) -> None:
    topic = topic_name("wedged")
    create_topics(topic)
    insert_rows(db_engine, topic, ["a"])
    (tmp_path / "wedged.yaml").write_text(
        f"topic: {topic}\nrelay_lock_wait_seconds: 0\nrelay_lock_busy_runs_to_fail: 3\n"
    )
    config = ServiceConfig.model_validate({"service": "wedged", "topic": topic})

    def run(previous: Any) -> dict[str, Any]:
        return tasks.run_relay(
            "wedged", {"run_id": "scheduled__x", "ti": FakeTaskInstance(previous)}, tmp_path
        )

    with db_engine.connect() as holder:
        assert OutboxStore(config).lock.acquire(holder, 0)
        holder_id = holder.execute(text("SELECT CONNECTION_ID()")).scalar_one()
        first = run(None)
        assert first["lock_busy_runs"] == 1 and first["published"] == 0
        assert run(first)["lock_busy_runs"] == 2
        with pytest.raises(
            tasks.RelayLockWedgedError, match=f"3 relay runs in a row .* connection id {holder_id}"
        ):
            run({**first, "lock_busy_runs": 2})
        OutboxStore(config).lock.release(holder)
    drained = run({**first, "lock_busy_runs": 2})  # the holder is gone: the count starts again
    assert drained["published"] == 1 and drained["lock_busy_runs"] == 0


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
        stats = tasks.run_relay("busy", {"run_id": "scheduled__y", "ti": FakeTaskInstance(None)}, tmp_path)
        store.lock.release(backfill)
        store.backfill_lock.release(backfill)
    assert stats["stopped_because"] == "a backfill of this table is running" and stats["lock_busy_runs"] == 0
