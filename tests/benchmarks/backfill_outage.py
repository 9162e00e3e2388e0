"""A 6-hour outage drained by the backfill DAG on a real Airflow (scheduler, dag-processor, api-server,
LocalExecutor, PostgreSQL metadata): how many DAG runs it takes and the wall time until the window has no
NEW row left. ``--legacy`` also measures the old way, ``airflow backfill create`` on the per-minute relay
DAG, on the same backlog.

``python -m tests.benchmarks.backfill_outage [--rows 100000] [--hours 6] [--legacy]``
(``make bench-backfill``). Prints one JSON line per way. Nothing is asserted: these are figures.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text

from tests.airflow.airflow_stack import AirflowStack, airflow_stack
from tests.benchmarks.common import fill, scratch_db, temp_topics, truncate
from tests.stack import airflow_connections

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 11, 20, 0, 0)


def _backlog(engine: Engine, topic: str, rows: int, hours: float) -> None:
    """``rows`` NEW rows created evenly over ``hours`` from START (what piled up during the outage)."""
    truncate(engine)
    fill(engine, topic, rows)
    step_us = int(hours * 3600 * 1_000_000 / rows)
    with engine.begin() as conn:  # by rank, not id: bulk inserts leave gaps in auto-increment ids
        conn.execute(
            text(
                "UPDATE outbox_message o JOIN (SELECT id, ROW_NUMBER() OVER (ORDER BY id) - 1 AS n "
                "FROM outbox_message) r ON r.id = o.id "
                "SET o.created_at = TIMESTAMPADD(MICROSECOND, r.n * :step, :start)"
            ),
            {"step": step_us, "start": START},
        )


def _new_left(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT COUNT(*) FROM outbox_message WHERE status = 'NEW'")).scalar_one()
        )


def _runs(stack: AirflowStack, dag_id: str) -> dict[str, int]:
    found = stack.metadata("SELECT state, COUNT(*) FROM dag_run WHERE dag_id = %s GROUP BY state", dag_id)
    return {str(state): int(n) for state, n in found}


def _drain(stack: AirflowStack, engine: Engine, dag_id: str, start: float, timeout: float) -> dict[str, Any]:
    """Wait until no row is NEW, then until no run of ``dag_id`` is active; the figures of the wait."""
    drained = None
    while time.monotonic() - start < timeout:
        if drained is None and _new_left(engine) == 0:
            drained = time.monotonic() - start
        runs = _runs(stack, dag_id)
        if drained is not None and not set(runs) - {"success", "failed"}:
            return {"seconds_to_drained": round(drained, 1), "seconds_to_last_run_done": round(
                time.monotonic() - start, 1), "runs": runs}  # fmt: skip
        time.sleep(1)
    return {"timeout_seconds": timeout, "new_left": _new_left(engine), "runs": _runs(stack, dag_id)}


@contextmanager
def _outage(
    engine: Engine, topic: str, rows: int, hours: float, home: Path, yaml: str
) -> Iterator[AirflowStack]:
    """The backlog of an outage and a running Airflow whose service ``bench`` has ``yaml`` settings."""
    services = home / "services"
    services.mkdir(parents=True)
    (services / "bench.yaml").write_text(f"topic: {topic}\nconfirm_schedule: null\nretention: null\n{yaml}")
    _backlog(engine, topic, rows, hours)
    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(engine)}
    with airflow_stack(home / "airflow", env) as stack:
        stack.wait_for_dag("outbox_bench_relay")
        yield stack


def measure_backfill_dag(engine: Engine, topic: str, rows: int, hours: float, home: Path) -> dict[str, Any]:
    with _outage(engine, topic, rows, hours, home, "schedule: null\nstart_paused: false\n") as stack:
        stack.wait_for_dag("outbox_bench_backfill")
        start = time.monotonic()
        conf = {"since": START.isoformat(), "until": (START + timedelta(hours=hours)).isoformat(),
                "reason": "benchmark: outage"}  # fmt: skip
        stack.api("POST", "/dags/outbox_bench_backfill/dagRuns", json={"logical_date": None, "conf": conf})
        figures = _drain(stack, engine, "outbox_bench_backfill", start, 1800)
        figures["relay_runs"] = _runs(stack, "outbox_bench_relay")
    return {"way": "backfill DAG (one run)", "rows": rows, "hours": hours, **figures}


def measure_airflow_backfill(
    engine: Engine, topic: str, rows: int, hours: float, home: Path
) -> dict[str, Any]:
    """The old way: `airflow backfill create` on the relay DAG (one run per minute of its schedule)."""
    with _outage(engine, topic, rows, hours, home, "schedule: '* * * * *'\nstart_paused: true\n") as stack:
        start = time.monotonic()
        until = (START + timedelta(hours=hours)).isoformat()
        created = stack.cli("backfill", "create", "--dag-id", "outbox_bench_relay", "--from-date",
                            f"{START.isoformat()}+00:00", "--to-date", f"{until}+00:00")  # fmt: skip
        if created.returncode != 0:
            return {"way": "airflow backfill create", "error": created.stderr[-2000:]}
        # Paused DAGs run nothing, backfill runs included; unpaused, the schedule also gets a run (which
        # relays everything eligible): the figures that matter here are the backfill's runs and time.
        stack.api("PATCH", "/dags/outbox_bench_relay", json={"is_paused": False})
        figures = _drain(stack, engine, "outbox_bench_relay", start, 3600)
        figures["backfill_runs"] = stack.metadata(
            "SELECT COUNT(*) FROM dag_run WHERE dag_id = 'outbox_bench_relay' AND run_id LIKE 'backfill%%'"
        )[0][0]
    return {"way": "airflow backfill create (relay DAG, * * * * *)", "rows": rows, "hours": hours, **figures}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--hours", type=float, default=6.0)
    parser.add_argument("--legacy", action="store_true", help="also measure `airflow backfill create`")
    args = parser.parse_args(argv)
    subprocess.run(["bash", str(ROOT / "include/devstack/postgres.sh")], check=True)
    ways = [measure_backfill_dag] + ([measure_airflow_backfill] if args.legacy else [])
    for way in ways:
        with scratch_db("backfill") as engine, temp_topics("backfill") as (topic,), \
                tempfile.TemporaryDirectory() as home:  # fmt: skip
            print(json.dumps(way(engine, topic, args.rows, args.hours, Path(home))), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
