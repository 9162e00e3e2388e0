"""The README's "With pip, beside the Airflow you run" block, run exactly as it is written, from this
checkout: in an environment that already has Airflow (3.3.2 on Python 3.12, with pip, and a migrated
metadata database), with OUTBOX_DB_URI and KAFKA_BOOTSTRAP naming the test's database and broker. After it
that Airflow loads the example's DAGs without import errors and lists the Outbox plugin and the provider,
and the block's own last line, `outbox-relay validate orders`, said OK.

The example's topics are the order demo's (orders.events, orders.results): the block creates them if
missing and publishes nothing (the table it creates is empty), so it runs beside the demo's tests."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url, text

from tests.compat.cells import UV, WORK, python_for
from tests.conftest import ROOT
from tests.stack import BOOTSTRAP, DB_SERVER_URL

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]
SECTION = "### With pip, beside the Airflow you run"


def readme_block() -> str:
    """The section's one ```bash block."""
    text_ = (ROOT / "README.md").read_text()
    section = text_[text_.index(SECTION) :].split("\n### ", 1)[0]
    (block,) = re.findall(r"```bash\n(.*?)```", section, re.S)
    return str(block)


def _run(args: list[str], env: dict[str, str] | None = None, cwd: Path = ROOT) -> str:
    done = subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, f"{args}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    return done.stdout


@pytest.fixture
def your_airflow(tmp_path: Path) -> Iterator[dict[str, str]]:
    """A Python environment with Airflow and pip (as a deployment has them) and its AIRFLOW_HOME; the
    environment variables the README's block runs with."""
    venv = WORK / "readme" / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    _run([str(UV), "venv", "-q", "--seed", "-p", python_for("3.12"), str(venv)])
    _run([str(UV), "pip", "install", "-q", "-p", str(venv / "bin" / "python"), "apache-airflow==3.3.2"])
    server = make_url(DB_SERVER_URL)
    database = f"readme_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server.set(database=None))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE `{database}`"))
    home = tmp_path / "airflow"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "OUTBOX_RELAY", "PYTHON", "VIRTUAL_ENV", "_AIRFLOW"))
    }
    password = f":{server.password}" if server.password else ""
    env.update(
        {
            "PATH": f"{venv / 'bin'}:{env['PATH']}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "OUTBOX_DB_URI": f"outbox://{server.username}{password}@{server.host}:{server.port or 3306}/{database}",
            "KAFKA_BOOTSTRAP": BOOTSTRAP,
        }
    )
    _run(["airflow", "db", "migrate"], env)
    try:
        yield env
    finally:
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{database}`"))
        admin.dispose()


def _json(args: list[str], env: dict[str, str]) -> list[dict[str, object]]:
    out = _run([*args, "-o", "json"], env)
    found = re.search(r"^\[.*\]\s*$", out, re.S | re.M)
    assert found, out[-2000:]
    return list(json.loads(found.group(0)))


def test_the_readme_install_block_runs_as_written(your_airflow: dict[str, str]) -> None:
    block = readme_block()
    assert block.splitlines()[0] == "make wheel" and "pip install" in block
    out = _run(["bash", "-euo", "pipefail", "-c", block], your_airflow)
    assert "OK      orders" in out, out[-3000:]
    assert _json(["airflow", "dags", "list-import-errors"], your_airflow) == []
    dag_ids = {d["dag_id"] for d in _json(["airflow", "dags", "list"], your_airflow)}
    assert {"outbox_orders_relay", "outbox_orders_confirmations", "outbox_orders_replay"} <= dag_ids
    assert "outbox_relay" in {p["name"] for p in _json(["airflow", "plugins"], your_airflow)}
    providers = {p["package_name"] for p in _json(["airflow", "providers", "list"], your_airflow)}
    assert "airflow-outbox-relay" in providers
