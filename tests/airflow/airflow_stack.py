"""A real Airflow 3 deployment for tests: api-server, scheduler and dag-processor with LocalExecutor
on a fresh PostgreSQL metadata database (Airflow does not support MySQL/MariaDB for itself here)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from tests.conftest import ROOT

PG_URL = os.environ.get("OUTBOX_TEST_AIRFLOW_PG", "postgresql+psycopg2://postgres@127.0.0.1:5432")
AIRFLOW = str(ROOT / ".venv" / "bin" / "airflow")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _psql(sql: str, *params: object, db: str = "postgres") -> list[tuple[Any, ...]]:
    import psycopg2

    conn = psycopg2.connect(f"{PG_URL.replace('postgresql+psycopg2://', 'postgresql://')}/{db}")
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql, params or None)
            return list(cur.fetchall()) if cur.description else []
    finally:
        conn.close()


class AirflowStack:
    def __init__(self, home: Path, env: dict[str, str], db: str) -> None:
        self.home = home
        self.env = env
        self.db = db

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run([AIRFLOW, *args], env=self.env, capture_output=True, text=True, timeout=timeout)

    def metadata(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        """A query on the stack's metadata database: waiting loops read it there, since every
        `airflow` CLI call costs seconds of CPU (imports) that the scheduler under test needs."""
        return _psql(sql, *params, db=self.db)


@contextmanager
def airflow_stack(home: Path, extra_env: dict[str, str]) -> Iterator[AirflowStack]:
    db = f"airflow_t_{uuid.uuid4().hex[:10]}"
    _psql(f"CREATE DATABASE {db}")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"{PG_URL}/{db}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
            "AIRFLOW__API__PORT": str(port),
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
            **extra_env,
        }
    )
    stack = AirflowStack(home, env, db)
    migrated = stack.cli("db", "migrate", timeout=300)
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    procs = []
    try:
        for component in (["api-server", "--port", str(port)], ["scheduler"], ["dag-processor"]):
            log = open(home / f"{component[0]}.log", "w")  # noqa: SIM115 - closed with the process
            procs.append(
                (subprocess.Popen([AIRFLOW, *component], env=env, stdout=log, stderr=subprocess.STDOUT), log)
            )
        _wait_for_port(port, 90)
        yield stack
    finally:
        for proc, _log in procs:
            proc.terminate()
        for proc, log in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            log.close()
        with suppress(Exception):  # best effort: a leftover test database is harmless
            _psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def _wait_for_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError(f"Airflow api-server did not listen on {port} within {seconds}s")
