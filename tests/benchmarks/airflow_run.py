"""The same relay run inside Airflow: ``airflow dags test outbox_bench_relay`` on the same backlog.

The figure compared with the plain-Python relay is the relay task's own rate (``published /
elapsed_seconds`` from the stats line it logs), so Airflow's start-up is not charged to the relay; the
wall time of the whole ``dags test`` (parse, metadata DB, ensure_topics, relay) is reported beside it.
Airflow uses SQLite metadata in ``.run/airflow-bench``, like the demos.
"""

from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, make_url

from tests.benchmarks.common import (
    BOOTSTRAP,
    SERVICE,
    Result,
    Sizes,
    fresh_backlog,
    rate,
    scratch_db,
    temp_topics,
)

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = Path(sys.executable).with_name("airflow")
HOME = ROOT / ".run" / "airflow-bench"
DAG_ID = f"outbox_{SERVICE}_relay"
STATS = re.compile(r"relay run \S+: (\{.*\})")  # the stats dict (greedy: it nests dicts)


def airflow_env(engine: Engine, services_dir: Path) -> dict[str, str]:
    """The environment ``include/devstack/demo_env.sh`` sets up, pointed at the benchmark's database."""
    db = make_url(engine.url).set(drivername="mysql").render_as_string(hide_password=False)
    kafka = json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": BOOTSTRAP}})
    return {
        **os.environ,
        "AIRFLOW_HOME": str(HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "dags"),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{HOME}/airflow.db",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        "OUTBOX_RELAY_SERVICES_DIR": str(services_dir),
        "AIRFLOW_CONN_KAFKA_DEFAULT": kafka,
        "AIRFLOW_CONN_OUTBOX_DB": db,
    }


def _airflow(args: list[str], env: dict[str, str], log: Path) -> str:
    with log.open("w") as out:
        done = subprocess.run(
            [str(AIRFLOW), *args], env=env, stdout=out, stderr=subprocess.STDOUT, check=False
        )
    output = log.read_text(errors="replace")
    if done.returncode != 0:
        raise RuntimeError(
            f"airflow {' '.join(args)} failed ({done.returncode}); see {log}:\n{output[-3000:]}"
        )
    return output


def relay_stats(output: str, log: Path) -> dict[str, Any]:
    """The stats dict the relay task logged (last one in the output)."""
    found = STATS.findall(output)
    if not found:
        raise RuntimeError(f"no relay stats line in the output of airflow dags test; see {log}")
    stats: dict[str, Any] = ast.literal_eval(found[-1])
    return stats


def measure(sizes: Sizes) -> list[Result]:
    """Relay inside Airflow at the reference batch size, on the same backlog as the plain-Python runs."""
    HOME.mkdir(parents=True, exist_ok=True)
    batch = sizes.ref_batch
    rates, walls = [], []
    with (
        scratch_db("airflow") as engine,
        temp_topics("airflow") as (topic,),
        tempfile.TemporaryDirectory() as folder,
    ):
        services = Path(folder)
        (services / f"{SERVICE}.yaml").write_text(
            f"service: {SERVICE}\ntopic: {topic}\nbatch_size: {batch}\ntime_budget_seconds: 3600\n"
            "retention: null\n"
        )
        env = airflow_env(engine, services)
        _airflow(["db", "migrate"], env, HOME / "migrate.log")
        for _ in range(sizes.repeats):
            fresh_backlog(engine, topic, sizes.rows)
            log = HOME / f"{DAG_ID}.log"
            started = time.perf_counter()
            output = _airflow(["dags", "test", DAG_ID], env, log)
            walls.append(time.perf_counter() - started)
            stats = relay_stats(output, log)
            if stats.get("published") != sizes.rows:
                raise RuntimeError(f"relay inside Airflow published {stats.get('published')} of {sizes.rows}")
            rates.append(rate(int(stats["published"]), float(stats["elapsed_seconds"])))
    return [
        Result("airflow_relay", batch, "rows/s", rates, {"relay_task": "rate from the task's own stats"}),
        Result(
            "airflow_dags_test_wall", batch, "s", walls, {"what": "whole `airflow dags test`, incl. start-up"}
        ),
    ]
