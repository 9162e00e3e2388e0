"""A sharded service on a real scheduler (LocalExecutor, two task slots): the relay DAG maps one relay task
per shard, they run side by side, each publishes its own keys' rows, the topic's asset event comes once for
all of them, and the health check adds them up."""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.airflow.airflow_stack import airflow_stack
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows
from tests.stack import airflow_connections, service_folder

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

RELAY = "outbox_hot_relay"
KEYS = [f"k{n}" for n in range(24)]


def test_a_sharded_relay_dag_maps_one_task_per_shard(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("hot")
    create_topics(topic)
    services = service_folder(
        tmp_path, "hot",
        f"topic: {topic}\nshards: 4\nschedule: null\nconfirm_schedule: null\nretention: null\nstart_paused: false\n",
    )  # fmt: skip
    written = insert_rows(db_engine, topic, [KEYS[n % len(KEYS)] for n in range(400)])
    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(db_engine)}
    with airflow_stack(tmp_path / "airflow", env) as stack:
        stack.wait_for_dag(RELAY)
        run_id = stack.trigger(RELAY, {})
        assert stack.wait_for_run(RELAY, run_id) == "success"
        mapped = stack.metadata(
            "SELECT map_index, state FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = 'relay' "
            "ORDER BY map_index", RELAY, run_id,
        )  # fmt: skip
        health = stack.metadata(
            "SELECT state FROM task_instance WHERE dag_id = %s AND run_id = %s AND task_id = 'check_health'",
            RELAY, run_id,
        )  # fmt: skip
        events = stack.metadata(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri LIKE %s",
            f"kafka://%/{topic}",
        )  # fmt: skip
    assert mapped == [(0, "success"), (1, "success"), (2, "success"), (3, "success")]
    extras = [e[0] if isinstance(e[0], dict) else json.loads(e[0]) for e in events]
    assert [(e["rows"], e["first_row_id"], e["last_row_id"]) for e in extras] == [
        (400, 1, 400)
    ]  # once, all shards
    assert health == [("success",)]
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(written)
    with db_engine.connect() as conn:
        rows = conn.execute(text("SELECT aggregate_id, status FROM outbox_message")).all()
    assert {status for _, status in rows} == {"SENT"}
    assert {zlib.crc32(k.encode()) % 4 for k, _ in rows} == {0, 1, 2, 3}  # every shard had rows to relay
