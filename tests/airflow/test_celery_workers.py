"""The DAGs on Airflow's own distributed executor: CeleryExecutor with Redis as its broker, PostgreSQL
metadata and two `airflow celery worker` processes with one task slot each. A sharded relay (4 mapped
tasks over 100,000 rows) and a second service's relay and confirmations run on them; one worker is
killed with `kill -9` while it is in the middle of a shard. Airflow notices the missing heartbeats,
fails that try and retries it on the other worker, which finishes: nothing lost, every key in order,
duplicates within the documented bound (the batches acknowledged but not yet marked SENT)."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from outbox_relay.writer import OutboxMessage, write_outbox
from tests.airflow.airflow_stack import AirflowStack, airflow_stack
from tests.faults.history import check_history
from tests.integration.kafka_tools import create_topics, send
from tests.stack import BOOTSTRAP, airflow_connections, service_folder

pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.slow]

ROWS, KEYS, SHARDS, BATCH = 100_000, 64, 4, 500
HOT, COLD = "outbox_hot_relay", "outbox_cold_relay"


def _write(engine: Engine, topic: str, rows: int, prefix: str, table: str = "outbox_message") -> None:
    with engine.begin() as conn:
        for start in range(0, rows, 10_000):
            write_outbox(conn, [OutboxMessage(topic, f"{prefix}-{n % KEYS}", "Evt", {"n": n})
                                for n in range(start, min(rows, start + 10_000))], table=table)  # fmt: skip


def _kill_a_worker_mid_shard(stack: AirflowStack, engine: Engine, run_id: str) -> int:
    """Wait until worker w1 runs a relay shard that has marked rows SENT, then kill -9 it; the shard. A task
    instance's external_executor_id is its Celery task id, which the worker logs when it receives it."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        running = stack.metadata(
            "SELECT map_index, external_executor_id FROM task_instance WHERE dag_id = %s AND run_id = %s "
            "AND task_id = 'relay' AND state = 'running'", HOT, run_id,
        )  # fmt: skip
        received = (stack.home / "worker-w1.log").read_text()
        for shard, celery_id in running:
            if (
                celery_id
                and f"[{celery_id}] received" in received
                and _sent_of_shard(engine, shard) >= 2 * BATCH
            ):
                stack.kill_worker("w1")
                return int(shard)
        time.sleep(0.2)
    raise AssertionError("worker w1 never ran a relay shard that had marked rows SENT")


def _sent_of_shard(engine: Engine, shard: int) -> int:
    with engine.connect() as conn:
        keys = conn.execute(
            text("SELECT DISTINCT aggregate_id FROM outbox_message WHERE status = 'SENT'")
        ).scalars()
        mine = [k for k in keys if zlib.crc32(k.encode()) % SHARDS == shard]
        if not mine:
            return 0
        return int(conn.execute(text("SELECT COUNT(*) FROM outbox_message WHERE status = 'SENT' AND aggregate_id "
                                      "IN :keys").bindparams(keys=mine), {}).scalar() or 0)  # fmt: skip


@pytest.mark.parametrize("delivery", ["at_least_once", "exactly_once"])
def test_a_worker_killed_mid_shard_loses_nothing(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path, delivery: str
) -> None:
    """At least once: up to two batches published again. Exactly once: the retried shard's relay fences the
    dead worker's producer and marks what its committed transactions carried, so nothing is published twice."""
    hot, cold = topic_name("celery_hot"), topic_name("celery_cold")
    create_topics(hot, partitions=8)
    create_topics(cold, f"{cold}.results")
    common = "schedule: null\nconfirm_schedule: null\nretention: null\nstart_paused: false\n"
    mode = f"delivery: {delivery}\nkafka: {{transactional_id_prefix: {hot}}}\n"
    services = service_folder(
        tmp_path, "hot", f"topic: {hot}\nshards: {SHARDS}\nbatch_size: {BATCH}\n{mode}{common}"
    )
    cold_file = f"topic: {cold}\ntable: cold_outbox\nconfirmation: {{topic: {cold}.results}}\n{common}"
    service_folder(tmp_path, "cold", cold_file)
    with db_engine.begin() as conn:
        conn.execute(text("CREATE TABLE cold_outbox LIKE outbox_message"))
    _write(db_engine, hot, ROWS, "hot")
    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(db_engine)}
    with airflow_stack(tmp_path / "airflow", env, celery_workers=2) as stack:
        stack.wait_for_dag(HOT)
        stack.wait_for_dag(COLD)
        run_id = stack.trigger(HOT, {})
        killed_shard = _kill_a_worker_mid_shard(stack, db_engine, run_id)
        _write(db_engine, cold, 300, "cold", table="cold_outbox")  # another service, on the surviving worker
        cold_run = stack.trigger(COLD, {})
        assert stack.wait_for_run(HOT, run_id, seconds=600) == "success"
        assert stack.wait_for_run(COLD, cold_run, seconds=300) == "success"
        tries = dict(stack.metadata(
            "SELECT map_index, try_number FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = 'relay'",
            HOT, run_id,
        ))  # fmt: skip
        with db_engine.connect() as conn:
            cold_ids = conn.execute(text("SELECT message_id FROM cold_outbox"))
            answers = [
                (None, json.dumps({"message_id": m, "status": "SUCCESS"}).encode())
                for m in cold_ids.scalars()
            ]
        assert len(answers) == 300
        send(f"{cold}.results", answers)
        confirmed = stack.trigger("outbox_cold_confirmations", {})
        assert stack.wait_for_run("outbox_cold_confirmations", confirmed, seconds=300) == "success"
        worker_log = (stack.home / "worker-w2.log").read_text()
    assert tries[killed_shard] >= 2 and stack.workers["w1"].returncode == -9, tries  # retried after the kill
    assert "outbox_hot_relay" in worker_log and "outbox_cold_confirmations" in worker_log  # w2 took over

    history = check_history(db_engine, [hot], BOOTSTRAP)
    # At least once, pipelined: up to two batches acked but not yet SENT when the worker died.
    history.assert_converged(max_duplicates=2 * BATCH if delivery == "at_least_once" else 0)
    assert history.distinct_published == ROWS
    with db_engine.connect() as conn:
        hot_rows = dict(conn.execute(text("SELECT status, COUNT(*) FROM outbox_message GROUP BY 1")).all())
        cold_rows = dict(conn.execute(text("SELECT status, COUNT(*) FROM cold_outbox GROUP BY 1")).all())
    assert (hot_rows, cold_rows) == ({"SENT": ROWS}, {"CONFIRMED": 300})
