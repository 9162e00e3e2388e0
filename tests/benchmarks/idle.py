"""What registered services cost while their tables are empty, and how soon a new row is sent, on a real
Airflow: api-server, scheduler and dag-processor (and the triggerer), LocalExecutor, PostgreSQL metadata,
as ``tests/airflow/airflow_stack.py`` starts them, with Airflow's default heartbeat and DAG refresh.

Two designs side by side (``--idle-designs``), each service with a confirmation topic:

* ``minute``: today's default schedules (relay every minute: ensure_topics, relay, check_health;
  confirmations every minute);
* ``events``: ``schedule: "@rows"`` and ``confirm_schedule: "@messages"`` (the triggerer watches each
  table and each confirmation topic's lag, ``watch_seconds: 5``, and starts a DAG only when there is
  work);
* ``linger``: ``events`` with ``linger_seconds: 60`` (a relay run that drained keeps looking every 0.1 s
  until no row came for a minute).

For N services on N empty tables, after the DAGs are parsed and their first runs are done, the CPU time
of every Airflow process and everything it started (task processes included) is read before and after
a window (``--idle-seconds``, default 300 s) and scaled to an hour; then (for the smallest and the
largest N) one row at a time is written to the first service's table and the seconds until it is SENT
are taken, and (event-driven designs) commit-to-SENT under steady traffic at each ``--steady-rates``
rows/s, over ``--steady-seconds`` from the first row SENT on. The figures ``idle_<design>_cpu_*`` count
Airflow's processes; ``idle_<design>_machine_cpu_*`` add the database server's and the broker's CPU over
the same window (every look a trigger takes is answered there), as issue 30 counts idle cost."""

from __future__ import annotations

import statistics
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
from sqlalchemy import Engine, text

from tests.airflow.airflow_stack import AirflowStack, airflow_stack
from tests.benchmarks.common import Result, Sizes, scratch_db
from tests.benchmarks.latency import offered_load, percentile
from tests.benchmarks.processes import server_cpu_used, server_snapshot
from tests.integration.kafka_tools import create_topics
from tests.stack import airflow_connections

WARM_UP_SECONDS = 75  # the first runs (topic checks, first parse of every DAG) are not idle cost
# Airflow's own defaults where the test stacks tune for speed (1 s scheduler heartbeat, a DAG folder
# re-read every 5 s): idle cost is measured as a deployment would run.
AIRFLOW_DEFAULTS = {
    "AIRFLOW__CORE__PARALLELISM": "4",  # LocalExecutor starts this many worker processes up front
    "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "5",
    "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "300",
}
DESIGNS = {
    "minute": "schedule: '* * * * *'\nconfirm_schedule: '* * * * *'\n",
    # without the hourly fallback runs, which a window of minutes would catch for some services and not
    # others; their cost per service-hour is measured apart (docs/semantics.md, "When the triggerer is away")
    "events": "schedule: '@rows'\nconfirm_schedule: '@messages'\nwatch_seconds: 5\nwatch_fallback_schedule: null\n",
    # events, and a relay run that drained keeps looking every 0.1 s until no row came for a minute
    "linger": "schedule: '@rows'\nconfirm_schedule: '@messages'\nwatch_seconds: 5\nwatch_fallback_schedule: null\n"
    "linger_seconds: 60\n",
}
AWAKE_MARGIN_SECONDS = 2.0  # steady traffic: rows written this long after the first SENT are the steady state


def _services(engine: Engine, folder: Path, count_: int, design: str) -> str:
    """``count_`` services, each with its own empty standard table, topic and confirmation topic; the first
    one's topic."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = uuid.uuid4().hex[:8]
    topics = []
    with engine.begin() as conn:
        for n in range(count_):
            conn.execute(text(f"CREATE TABLE idle_{n} LIKE outbox_message"))
            topics.append(f"bench.idle.{suffix}.{n}")
            (folder / f"idle_{n}.yaml").write_text(
                f"table: idle_{n}\ntopic: {topics[-1]}\nconfirmation: {{topic: {topics[-1]}.results}}\n"
                f"{DESIGNS[design]}retention: null\nstart_paused: false\n"
            )
    create_topics(*topics, *(f"{t}.results" for t in topics), partitions=1)
    return topics[0]


def _cpu_seconds(stack: AirflowStack) -> dict[str, float]:
    """User + system CPU of each component (api-server, scheduler, ...): its own, its descendants', and
    that of the children they have reaped."""
    by_component: dict[str, float] = {}
    for proc in stack.processes:
        name = str(proc.args[1]) if isinstance(proc.args, list) else str(proc.pid)
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
            by_component[name] = (
                by_component.get(name, 0.0) + t.user + t.system + t.children_user + t.children_system
            )
    return by_component


def _latency(engine: Engine, topic: str, stack: AirflowStack, design: str) -> float:
    """Seconds from the commit of one row in ``idle_0`` until the relay marked it SENT, once no relay run of
    it is queued or running (a lingering run would answer at once: that is not the time after idle)."""
    deadline = time.monotonic() + 300
    while stack.metadata(
        "SELECT COUNT(*) FROM dag_run WHERE dag_id = 'outbox_idle_0_relay' AND state IN ('queued', 'running')"
    )[0][0]:
        if time.monotonic() > deadline:
            raise RuntimeError(f"{design} design: a relay run of idle_0 still queued or running after 300 s")
        time.sleep(0.5)
    mid = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO idle_0 (message_id, aggregate_id, event_type, topic, payload) "
                          "VALUES (:m, 'k', 'Evt', :t, '{}')"), {"m": mid, "t": topic})  # fmt: skip
    committed = time.monotonic()
    while time.monotonic() - committed < 300:
        with engine.connect() as conn:
            if (
                conn.execute(text("SELECT status FROM idle_0 WHERE message_id = :m"), {"m": mid}).scalar()
                == "SENT"
            ):
                return time.monotonic() - committed
        time.sleep(0.2)
    raise RuntimeError(
        f"{design} design: a row written to idle_0 was not SENT within 300 s\n"
        f"{stack.diagnosis('outbox_idle_0_')}"
    )


def _steady(engine: Engine, topic: str, per_second: int, seconds: float, design: str) -> list[float]:
    """Commit-to-SENT milliseconds (the database's clock) under steady traffic: ``per_second`` rows/s into
    ``idle_0`` until ``seconds`` after the first of them was SENT. Rows written before that first SENT
    (plus a margin) are the wake from idle, timed by ``_latency``, and left out."""
    with engine.connect() as conn:
        start = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM idle_0")).scalar()
    written: list[int] = []
    stop = threading.Event()
    writer = threading.Thread(
        target=offered_load, args=(engine, topic, per_second, 3600, written, "idle_0", stop)
    )
    writer.start()
    try:
        first = _first_sent(engine, start, design)
        time.sleep(AWAKE_MARGIN_SECONDS + seconds)  # the steady window: rows are written all along it
    finally:
        stop.set()
        writer.join()
    query = text("SELECT created_at, sent_at FROM idle_0 WHERE id > :start ORDER BY id")
    deadline = time.monotonic() + 300
    while True:
        rows = _rows(engine, query, start)
        if all(sent is not None for _, sent in rows):
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"{design} design: steady rows at {per_second}/s not all SENT within 300 s")
        time.sleep(0.5)
    awake = first + AWAKE_MARGIN_SECONDS
    return [(sent - created).total_seconds() * 1000 for created, sent in rows if created.timestamp() >= awake]


def _rows(engine: Engine, query: Any, start: int) -> list[Any]:
    with engine.connect() as conn:
        return list(conn.execute(query, {"start": start}).all())


def _first_sent(engine: Engine, start: int, design: str) -> float:
    """When (the database's clock, epoch seconds) the first row after ``start`` was SENT."""
    deadline = time.monotonic() + 300
    query = text("SELECT MIN(sent_at) FROM idle_0 WHERE id > :start AND sent_at IS NOT NULL")
    while True:
        with engine.connect() as conn:
            first = conn.execute(query, {"start": start}).scalar()
        if first is not None:
            return float(first.timestamp())
        if time.monotonic() > deadline:
            raise RuntimeError(f"{design} design: no steady row SENT within 300 s")
        time.sleep(0.2)


def _one(
    count_: int, design: str, sizes: Sizes, samples: int
) -> tuple[dict[str, float], int, list[float], dict[int, list[float]]]:
    """CPU-s per hour of ``count_`` idle services by component, the task runs started in the window,
    latencies after idle, and (with latency samples) commit-to-SENT ms under steady traffic per rate."""
    window = sizes.idle_seconds
    with scratch_db(f"idle{count_}") as engine, tempfile.TemporaryDirectory() as home:
        services = Path(home) / "services"
        topic = _services(engine, services, count_, design)
        env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **AIRFLOW_DEFAULTS, **airflow_connections(engine)}
        if sizes.dag_parse_seconds is not None:
            env["AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL"] = str(int(sizes.dag_parse_seconds))
        with airflow_stack(Path(home) / "airflow", env, triggerer=design != "minute") as stack:
            stack.wait_for_dag(f"outbox_idle_{count_ - 1}_relay", seconds=300)
            time.sleep(min(WARM_UP_SECONDS, window))
            started, cpu_before, servers_before = time.time(), _cpu_seconds(stack), server_snapshot()
            time.sleep(window)
            cpu_after = _cpu_seconds(stack)
            servers = server_cpu_used(servers_before, server_snapshot())
            for name, used in servers.items():  # the database and the broker, as components
                if used is not None:
                    cpu_before[f"server:{name}"], cpu_after[f"server:{name}"] = 0.0, used
            runs = stack.metadata(
                "SELECT COUNT(*) FROM task_instance WHERE start_date >= to_timestamp(%s) AND "
                "start_date < to_timestamp(%s)", started, started + window,
            )[0][0]  # fmt: skip
            latencies = [_latency(engine, topic, stack, design) for _ in range(samples)]
            steady = (
                {
                    rate: _steady(engine, topic, rate, sizes.steady_seconds, design)
                    for rate in sizes.steady_rates
                }
                if samples and design != "minute"
                else {}
            )
    per_hour = {name: (cpu_after[name] - cpu_before.get(name, 0.0)) * 3600 / window for name in cpu_after}
    return per_hour, int(runs), latencies, steady


def measure(sizes: Sizes) -> list[Result]:
    """Per design and service count: CPU-s per hour in all and per service; with two counts or more the
    marginal cost of one more idle service (which leaves out what Airflow costs with no service at
    all); the median commit-to-SENT latency."""
    results = []
    machine: dict[str, dict[int, float]] = {}
    sampled = {min(sizes.idle_services)} | ({max(sizes.idle_services)} if sizes.latency_at_largest else set())
    for design in sizes.idle_designs:
        totals: dict[int, float] = {}
        for count_ in sizes.idle_services:
            samples = sizes.latency_samples if count_ in sampled else 0
            by_component, runs, latencies, steady = _one(count_, design, sizes, samples)
            per_hour = totals[count_] = sum(v for k, v in by_component.items() if not k.startswith("server:"))
            everything = machine.setdefault(design, {})[count_] = sum(by_component.values())
            extra = {"design": design, "services": count_, "window_seconds": sizes.idle_seconds,
                     "task_runs": runs, "latencies": [round(x, 2) for x in latencies],
                     "dag_parse_seconds": sizes.dag_parse_seconds or 30,
                     "cpu_s_per_hour_by_component": {k: round(v, 1) for k, v in by_component.items()}}  # fmt: skip
            results.append(
                Result(f"idle_{design}_cpu_per_service_hour", count_, "CPU-s", [per_hour / count_], extra)
            )
            results.append(
                Result(
                    f"idle_{design}_machine_cpu_per_service_hour",
                    count_,
                    "CPU-s",
                    [everything / count_],
                    extra,
                )
            )
            if latencies:
                results.append(Result(f"latency_{design}_commit_to_sent", count_, "s", latencies, extra))
            for rate, values in steady.items():
                load = {"design": design, "services": count_, "rows_per_s": rate, "rows": len(values),
                        "seconds": sizes.steady_seconds}  # fmt: skip
                # the row's "batch" is the offered rows/s here (one service)
                results.append(Result(f"steady_{design}_p50", rate, "ms", [statistics.median(values)], load))
                results.append(Result(f"steady_{design}_p99", rate, "ms", [percentile(values, 0.99)], load))
        if len(totals) >= 2:
            low, high = min(totals), max(totals)
            span = {"from_services": low, "to_services": high}
            results.append(Result(f"idle_{design}_cpu_marginal_per_service_hour", None, "CPU-s",
                                  [(totals[high] - totals[low]) / (high - low)], span))  # fmt: skip
            whole = machine[design]
            results.append(Result(f"idle_{design}_machine_cpu_marginal_per_service_hour", None, "CPU-s",
                                  [(whole[high] - whole[low]) / (high - low)], span))  # fmt: skip
    return results
