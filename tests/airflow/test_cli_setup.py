"""`outbox-relay init` and `outbox-relay ddl`: a starting point in a DAG folder that Airflow loads as it is,
and the tables printed or created on an Airflow connection (the real MariaDB), with errors that say what
was wrong."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from tests.conftest import ROOT
from tests.stack import DB_SERVER_URL, database_connection

pytestmark = [pytest.mark.airflow, pytest.mark.integration]
CLI = ROOT / ".venv" / "bin" / "outbox-relay"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW_CONN_", "OUTBOX_RELAY_"))}
    return subprocess.run(
        [str(CLI), *args], env={**base, **(env or {})}, capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def test_init_writes_a_starting_point_and_never_overwrites_without_force(tmp_path: Path) -> None:
    dags = tmp_path / "dags"
    done = _cli("init", str(dags))
    assert done.returncode == 0, done.stderr
    written = sorted(str(p.relative_to(dags)) for p in dags.rglob("*") if p.is_file())
    assert written == [
        "outbox_service_config_errors.py",
        "outbox_services.py",
        "services/orders.sql",
        "services/orders.yaml",
        "services/service.schema.json",
    ]
    assert "outbox-relay ddl --service orders --apply" in done.stdout
    (dags / "services" / "orders.yaml").write_text("# mine\n")
    again = _cli("init", str(dags))
    assert again.returncode == 2 and "already there:" in again.stderr and "nothing written" in again.stderr
    assert (dags / "services" / "orders.yaml").read_text() == "# mine\n"
    forced = _cli("init", "--force", str(dags))
    assert forced.returncode == 0 and "service: orders" not in (dags / "services" / "orders.yaml").read_text()
    assert "topic: orders.events" in (dags / "services" / "orders.yaml").read_text()


def test_the_scaffolded_dag_folder_loads_and_a_bad_file_breaks_only_itself(tmp_path: Path) -> None:
    from airflow.dag_processing.dagbag import DagBag

    dags = tmp_path / "dags"
    assert _cli("init", str(dags)).returncode == 0
    bag = DagBag(dag_folder=str(dags))
    assert bag.import_errors == {}
    kinds = {"relay", "replay", "backfill", "confirmations", "cleanup"}
    assert set(bag.dags) == {f"outbox_orders_{kind}" for kind in kinds}
    (dags / "services" / "billing.yaml").write_text("topic: billing.events\nbatch_sise: 10\n")
    bag = DagBag(dag_folder=str(dags))
    assert set(bag.dags) == {f"outbox_orders_{kind}" for kind in kinds}
    (error,) = bag.import_errors.values()
    assert "billing.yaml: field 'batch_sise': unknown field" in error


def test_ddl_prints_the_tables_under_the_name_asked_for() -> None:
    named = _cli("ddl", "--table", "shop.orders_outbox", "--inbox")
    assert named.returncode == 0, named.stderr
    assert "CREATE TABLE IF NOT EXISTS `shop`.`orders_outbox` (" in named.stdout
    for shared in ("outbox_relay_attempt", "outbox_relay_replay", "inbox_message"):
        assert f"CREATE TABLE IF NOT EXISTS {shared} (" in named.stdout
    shared_only = _cli("ddl", "--shared-only")
    assert "outbox_message" not in shared_only.stdout and "outbox_relay_replay" in shared_only.stdout
    bad = _cli("ddl", "--table", "orders;drop")
    assert bad.returncode == 2 and "is not a valid table name" in bad.stderr


@pytest.fixture
def empty_database() -> Iterator[Engine]:
    name = f"outbox_ddl_{uuid.uuid4().hex[:8]}"
    server = make_url(DB_SERVER_URL)
    admin = create_engine(server.set(database=None))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE `{name}`"))
    engine = create_engine(server.set(database=name))
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE `{name}`"))
    admin.dispose()


def _services(tmp_path: Path) -> Path:
    folder = tmp_path / "services"
    folder.mkdir()
    (folder / "orders.yaml").write_text("topic: orders.events\ntable: orders_outbox\n")
    (folder / "legacy.yaml").write_text(
        "topic: t\ntable: legacy\ncolumns: {id: tid, status: state, payload: body}\nretention: null\n"
    )
    return folder


def test_ddl_apply_creates_what_is_missing_on_the_services_connection(
    empty_database: Engine, tmp_path: Path
) -> None:
    url = empty_database.url
    conn = {
        "AIRFLOW_CONN_OUTBOX_DB": f"outbox://{url.username}:{url.password or ''}@{url.host}:{url.port or 3306}"
        f"/{url.database}"
    }
    folder = str(_services(tmp_path))
    first = _cli("--services-dir", folder, "ddl", "--service", "orders", "--apply", env=conn)
    assert first.returncode == 0, first.stderr
    assert first.stdout.splitlines() == [
        "created orders_outbox  (the outbox table (the standard shape))",
        "created outbox_relay_attempt  (retry state of tables without attempt columns)",
        "created outbox_relay_replay  (row history: replays, republishes, failed attempts)",
        "created outbox_relay_lock_busy  (relay runs in a row that found the relay lock held)",
        "created outbox_relay_progress  (exactly-once delivery: the last batch of each relay marked here)",
        "created outbox_relay_sent_range  (which relay run sent which rows (ranges of row ids))",
    ]
    again = _cli("--services-dir", folder, "ddl", "--service", "orders", "--apply", env=conn)
    assert [line.split()[0] for line in again.stdout.splitlines()] == ["exists"] * 6
    with empty_database.connect() as db:
        assert {r[0] for r in db.execute(text("SHOW TABLES"))} == {
            "orders_outbox",
            "outbox_relay_attempt",
            "outbox_relay_replay",
            "outbox_relay_lock_busy",
            "outbox_relay_progress",
            "outbox_relay_sent_range",
        }
    legacy = _cli("--services-dir", folder, "ddl", "--service", "legacy", "--apply", env=conn)
    assert legacy.returncode == 2 and "maps its own columns (table legacy)" in legacy.stderr
    assert "--shared-only" in legacy.stderr


def test_ddl_apply_without_the_connection_says_where_it_looked(tmp_path: Path) -> None:
    home = tmp_path / "airflow"
    done = _cli("ddl", "--apply", "--conn", "nowhere_db", env={"AIRFLOW_HOME": str(home)})
    assert done.returncode == 1
    assert "error: database connection 'nowhere_db'" in done.stderr
    assert "not in $AIRFLOW_CONN_NOWHERE_DB, the secrets backend, nor the metadata database" in done.stderr


def test_the_cli_finds_a_connection_in_the_configured_secrets_backend(
    empty_database: Engine, tmp_path: Path
) -> None:
    """Airflow's secrets backend (here its local-file one), as `airflow connections get` would read it."""
    stored = {"file_db": database_connection(empty_database, "outbox")}
    (tmp_path / "connections.json").write_text(json.dumps(stored))
    backend = {
        "AIRFLOW__SECRETS__BACKEND": "airflow.secrets.local_filesystem.LocalFilesystemBackend",
        "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(
            {"connections_file_path": str(tmp_path / "connections.json")}
        ),
    }
    done = _cli("ddl", "--shared-only", "--apply", "--conn", "file_db", env=backend)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[0].startswith("created outbox_relay_attempt")


def test_airflows_log_lines_go_to_stderr_so_json_output_stays_json(db_engine: Engine, tmp_path: Path) -> None:
    """Without a Fernet key Airflow warns on every connection lookup; the CLI's --json output must still be
    nothing but JSON on stdout (the warning goes to stderr)."""
    from tests.integration.outbox_rows import insert_rows
    from tests.stack import airflow_connections

    (tmp_path / "orders.yaml").write_text("topic: t\n")
    (message_id,) = insert_rows(db_engine, "t", ["k"])
    stored = json.loads(airflow_connections(db_engine)["AIRFLOW_CONN_OUTBOX_DB"])
    with_extra = json.dumps({**stored, "extra": {"charset": "utf8mb4"}})  # an extra: Airflow decrypts it
    env = {
        "AIRFLOW_CONN_OUTBOX_DB": with_extra,
        "AIRFLOW_HOME": str(tmp_path / "home"),
        "AIRFLOW__CORE__FERNET_KEY": "",
    }
    done = _cli("--services-dir", str(tmp_path), "explain", "orders", message_id, "--json", env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["message_id"] == message_id
    assert "empty cryptography key" in done.stderr
