"""`python -m outbox_relay_airflow.cli validate|plan` against the live DB and broker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.conftest import BOOTSTRAP, ROOT
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def _cli(args: list[str], db_url: str, services: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "AIRFLOW_CONN_OUTBOX_DB": db_url.replace("mysql+pymysql://", "mysql://"),
        "AIRFLOW_CONN_KAFKA_DEFAULT": f'{{"conn_type": "kafka", "extra": {{"bootstrap.servers": "{BOOTSTRAP}"}}}}',
    }
    return subprocess.run(
        [sys.executable, "-m", "outbox_relay_airflow.cli", "--services-dir", str(services), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_validate_reports_missing_index_topic_and_bad_files(db_engine: Engine, tmp_path: Path) -> None:
    url = db_engine.url.render_as_string(hide_password=False)
    with db_engine.begin() as conn:
        conn.execute(
            text("CREATE TABLE legacy (tid BIGINT PRIMARY KEY, uid BIGINT, status INT, created DATETIME)")
        )
    topic = f"cli.{os.getpid()}.{tmp_path.name[-6:]}"
    (tmp_path / "legacy.yaml").write_text(
        f"topic: {topic}\ntable: legacy\ncolumns: {{id: tid, status: status, key: uid, created_at: created}}\n"
        "statuses: {new: 0, sent: 1, confirmed: null, failed: null}\npayload: {columns: [uid, tid, nope]}\n"
    )
    (tmp_path / "broken.yaml").write_text("topic: t\nbatch_size: many\n")

    done = _cli(["validate"], url, tmp_path)

    assert done.returncode == 1
    out = done.stdout
    assert "INVALID" in out and "broken.yaml" in out and "field 'batch_size'" in out
    assert "column 'nope' (payload.columns) not found in legacy" in out
    assert "ALTER TABLE `legacy` ADD INDEX `ix_legacy_status_tid` (`status`, `tid`);" in out
    assert f"topic '{topic}' does not exist" in out

    create_topics(topic)
    (tmp_path / "broken.yaml").unlink()
    (tmp_path / "legacy.yaml").write_text(
        f"topic: {topic}\ntable: legacy\ncolumns: {{id: tid, status: status, key: uid, created_at: created}}\n"
        "statuses: {new: 0, sent: 1, confirmed: null, failed: null}\npayload: {columns: [uid, tid]}\n"
    )
    with db_engine.begin() as conn:
        conn.execute(text("ALTER TABLE legacy ADD INDEX ix_legacy_status_tid (status, tid)"))
        conn.execute(text("INSERT INTO legacy VALUES (1, 7, 0, NOW()), (2, 8, 1, NOW())"))
    planned = _cli(["plan"], url, tmp_path)
    assert planned.returncode == 0, planned.stdout + planned.stderr
    assert "OK      legacy" in planned.stdout
    backlog = json.loads(planned.stdout.split("backlog: ", 1)[1].splitlines()[0])
    assert backlog["rows_by_status"] == {"0": 1, "1": 1} and 0 <= backlog["oldest_new_seconds"] < 600

    gone = _cli(["validate", "--offline"], url, tmp_path / "servcies")
    assert gone.returncode == 1
    assert f"INVALID {tmp_path / 'servcies'}: no such folder (the folder given)" in gone.stdout


def test_validate_refuses_a_table_claimed_by_random_ids_and_says_what_fixes_it(
    db_engine: Engine, tmp_path: Path
) -> None:
    """Rows claimed in the order of random UUID primary keys lose per-key order: validate says so and what
    to do (order_by a time column, or per_key_order: false); time-ordered ids (UUIDv7) pass."""
    import uuid

    from outbox_relay.ids import uuid7

    url = db_engine.url.render_as_string(hide_password=False)
    ids = {"random_ids": lambda: str(uuid.uuid4()), "ordered_ids": uuid7}
    with db_engine.begin() as conn:
        for table, new_id in ids.items():
            conn.execute(
                text(
                    f"CREATE TABLE {table} (id CHAR(36) PRIMARY KEY, k VARCHAR(20), status VARCHAR(8), body TEXT, "
                    f"created DATETIME(6), KEY ix_{table}_status_id (status, id))"
                )
            )
            for _ in range(20):
                conn.execute(
                    text(f"INSERT INTO {table} VALUES (:i, 'k', 'NEW', '{{}}', NOW(6))"), {"i": new_id()}
                )
    mapping = (
        "columns: {id: id, key: k, status: status, payload: body, created_at: created}\nretention: null\n"
    )
    (tmp_path / "random.yaml").write_text(f"topic: t\ntable: random_ids\n{mapping}")
    (tmp_path / "ordered.yaml").write_text(f"topic: t\ntable: ordered_ids\n{mapping}")
    out = _cli(["validate", "random", "ordered"], url, tmp_path).stdout
    problem = (
        "problem: rows of random_ids are claimed in the order of its primary key 'id' (char), whose values"
    )
    assert "PROBLEM random" in out and f"{problem} are random UUIDs" in out, out
    assert "fix:     set order_by: [created] (validate then prints the index it needs), or, if its" in out
    assert "per_key_order: false" in out
    ordered = out[out.index("ordered (") :].split("\n", 1)[1].split("OK ")[0].split("PROBLEM ")[0]
    assert "random UUIDs" not in ordered and "claimed in the order" not in ordered, (
        out
    )  # UUIDv7: creation order
    (tmp_path / "random.yaml").write_text(f"topic: t\ntable: random_ids\n{mapping}per_key_order: false\n")
    assert "random UUIDs" not in _cli(["validate", "random"], url, tmp_path).stdout


def test_relay_delivers_exactly_once_through_the_airflow_connections(
    db_engine: Engine, tmp_path: Path
) -> None:
    """The glue's exactly-once clients (transactional producer, progress reader, admin) come from the
    Airflow connection, as in a task; the progress topic is created on the first run."""
    url = db_engine.url.render_as_string(hide_password=False)
    topic = f"cli.eos.{os.getpid()}.{tmp_path.name[-6:]}"
    create_topics(topic)
    ids = insert_rows(db_engine, topic, ["a", "b", "a"])
    prefix = f"cli{tmp_path.name[-8:]}"
    (tmp_path / "billing.yaml").write_text(
        f"topic: {topic}\ndelivery: exactly_once\nkafka: {{transactional_id_prefix: {prefix}, "
        f"progress_topic: {topic}.progress}}\n"
    )

    done = _cli(["relay", "billing"], url, tmp_path)

    assert done.returncode == 0, done.stderr[-3000:]
    stats = json.loads(done.stdout)  # stdout is the JSON alone: the hooks' log lines go to stderr
    assert (stats["published"], stats["recovered"]) == (3, 0), done.stdout
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(ids)
    progress = read_all(f"{topic}.progress")
    assert [r.key for r in progress] == [f"{prefix}.billing.all"]  # the aborted probe is never seen
    assert json.loads(progress[0].value)["batches"][0]["sent"] == {"ranges": [[1, 3]]}
