"""What registered services cost while their tables are empty, with today's schedules (relay every
minute: ensure_topics, relay, check_health; confirmations every minute), on a real Airflow: api-server,
scheduler and dag-processor, LocalExecutor, PostgreSQL metadata, as ``tests/airflow/airflow_stack.py``
starts them.

For N services on N empty tables, after the DAGs are parsed and their first runs are done, the CPU time
of every Airflow process and everything it started (task processes included) is read before and after
a window (``--idle-seconds``, default 300 s) and scaled to an hour. Reported: CPU-s per hour for all N,
per service, and per task run in the window (from the metadata DB). MariaDB's and the broker's own CPU
are not counted."""

from __future__ import annotations

import tempfile
import time
import uuid
from pathlib import Path

import psutil
from sqlalchemy import Engine, text

from tests.airflow.airflow_stack import AirflowStack, airflow_stack
from tests.benchmarks.common import Result, Sizes, scratch_db
from tests.integration.kafka_tools import create_topics
from tests.stack import airflow_connections

WARM_UP_SECONDS = 75  # the first runs (topic checks, first parse of every DAG) are not idle cost
# Airflow's own defaults where the test stacks tune for speed (1 s scheduler heartbeat, a DAG folder
# re-read every 5 s): idle cost is measured as a deployment would run.
AIRFLOW_DEFAULTS = {
    "AIRFLOW__CORE__PARALLELISM": "32",
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "5",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "300",
}


def _services(engine: Engine, folder: Path, count_: int) -> None:
    """``count_`` services, each with its own empty standard table, topic and confirmation topic."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = uuid.uuid4().hex[:8]
    topics = []
    with engine.begin() as conn:
        for n in range(count_):
            conn.execute(text(f"CREATE TABLE idle_{n} LIKE outbox_message"))
            topic = f"bench.idle.{suffix}.{n}"
            topics += [topic, f"{topic}.results"]
            (folder / f"idle_{n}.yaml").write_text(
                f"table: idle_{n}\ntopic: {topic}\nconfirmation: {{topic: {topic}.results}}\n"
                "retention: null\nstart_paused: false\n"
            )
    create_topics(*topics, partitions=1)


def _cpu_seconds(stack: AirflowStack) -> float:
    """User + system CPU of every component, its descendants, and the children they have reaped."""
    total = 0.0
    for proc in stack.processes:
        try:
            root = psutil.Process(proc.pid)
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            continue
        for member in family:
            try:
                t = member.cpu_times()
            except psutil.NoSuchProcess:
                continue
            total += t.user + t.system + t.children_user + t.children_system
    return total


def _one(count_: int, window: float) -> tuple[float, int]:
    """CPU-s per hour of ``count_`` idle services, and the task runs started in the window."""
    with scratch_db(f"idle{count_}") as engine, tempfile.TemporaryDirectory() as home:
        services = Path(home) / "services"
        _services(engine, services, count_)
        env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **AIRFLOW_DEFAULTS, **airflow_connections(engine)}
        with airflow_stack(Path(home) / "airflow", env) as stack:
            stack.wait_for_dag(f"outbox_idle_{count_ - 1}_relay", seconds=300)
            time.sleep(min(WARM_UP_SECONDS, window))
            started, cpu_before = time.time(), _cpu_seconds(stack)
            time.sleep(window)
            cpu = _cpu_seconds(stack) - cpu_before
            runs = stack.metadata(
                "SELECT COUNT(*) FROM task_instance WHERE start_date >= to_timestamp(%s) AND "
                "start_date < to_timestamp(%s)", started, started + window,
            )[0][0]  # fmt: skip
    return cpu * 3600 / window, int(runs)


def measure(sizes: Sizes) -> list[Result]:
    """Per service count: the total and per-service figure; with two counts or more also the marginal cost
    of one more idle service (which leaves out what Airflow costs with no service at all)."""
    results = []
    totals: dict[int, float] = {}
    for count_ in sizes.idle_services:
        per_hour, runs = _one(count_, sizes.idle_seconds)
        totals[count_] = per_hour
        extra = {
            "services": count_,
            "window_seconds": sizes.idle_seconds,
            "task_runs": runs,
            "cpu_seconds_per_task_run": round(per_hour * sizes.idle_seconds / 3600 / runs, 3)
            if runs
            else None,
        }
        results.append(Result(f"idle_cpu_{count_}_services_hour", None, "CPU-s", [per_hour], extra))
        results.append(Result("idle_cpu_per_service_hour", count_, "CPU-s", [per_hour / count_], extra))
    if len(totals) >= 2:
        low, high = min(totals), max(totals)
        marginal = (totals[high] - totals[low]) / (high - low)
        results.append(Result("idle_cpu_marginal_per_service_hour", None, "CPU-s", [marginal],
                              {"from_services": low, "to_services": high}))  # fmt: skip
    return results
