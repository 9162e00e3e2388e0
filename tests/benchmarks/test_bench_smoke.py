"""CI smoke run of the benchmark harness (tiny sizes) so it cannot rot. Speed is never asserted."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.benchmarks.bench import COMPONENTS, TARGETS

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "kafka_ceiling",
    "mysql_ceiling",
    "naive_relay",
    "project_relay",
    "airflow_relay",
    "airflow_dags_test_wall",
    "confirmation_ingest",
    "insert",
    "retention_delete",
    "latency_p50",
    "latency_p99",
    "relay_empty_table",
    "relay_with_terminal_rows",
    "relay_cpu_per_msg",
    "naive_cpu_per_msg",
    "relay_db_cpu_per_msg",
    "relay_broker_cpu_per_msg",
    "naive_db_cpu_per_msg",
    "naive_broker_cpu_per_msg",
    "relay_peak_rss",
    "naive_peak_rss",
    "page_overview",
    "page_service",
    "page_search_by_key",
    "page_failed_list",
    "page_failed_list_by_error",
    "sharded_relay_1",
    "sharded_relay_2",
    "sharded_relay_4",
    "sharded_relay_2_indexed",
    "sharded_relay_4_indexed",
    "naive_relay_paired",
    "naive_relay_run_id_paired",
    "lean_relay_paired",
    "project_relay_paired",
    "relay_at_least_once",
    "relay_exactly_once",
    "at_least_once_batch_ms",
    "exactly_once_batch_ms",
    "exactly_once_commit_ms",
    "idle_minute_cpu_per_service_hour",
    "idle_minute_cpu_marginal_per_service_hour",
    "idle_minute_machine_cpu_per_service_hour",
    "idle_minute_machine_cpu_marginal_per_service_hour",
    "latency_minute_commit_to_sent",
    "idle_events_cpu_per_service_hour",
    "idle_events_cpu_marginal_per_service_hour",
    "idle_events_machine_cpu_per_service_hour",
    "idle_events_machine_cpu_marginal_per_service_hour",
    "latency_events_commit_to_sent",
    "idle_linger_cpu_per_service_hour",
    "idle_linger_cpu_marginal_per_service_hour",
    "idle_linger_machine_cpu_per_service_hour",
    "idle_linger_machine_cpu_marginal_per_service_hour",
    "latency_linger_commit_to_sent",
    "steady_events_p50",
    "steady_events_p99",
    "steady_linger_p50",
    "steady_linger_p99",
    "peer_update_ceiling",
    "peer_lean_drain",
    "peer_lean_cpu_per_msg",
    "peer_lean_total_cpu_per_msg",
    "peer_lean_binlog_bytes_per_msg",
    "peer_lean_lost_rows",
    "peer_lean_db_cpu_per_msg",
    "peer_lean_broker_cpu_per_msg",
    "peer_lean_latency_p50",
    "peer_lean_latency_p99",
    "peer_lean_idle_cpu_per_hour",
    "peer_relay_drain",
    "peer_relay_cpu_per_msg",
    "peer_relay_total_cpu_per_msg",
    "peer_relay_binlog_bytes_per_msg",
    "peer_relay_lost_rows",
    "peer_relay_db_cpu_per_msg",
    "peer_relay_broker_cpu_per_msg",
    "peer_relay_latency_p50",
    "peer_relay_latency_p99",
    "peer_relay_idle_cpu_per_hour",
    "peer_debezium_drain",
    "peer_debezium_cpu_per_msg",
    "peer_debezium_total_cpu_per_msg",
    "peer_debezium_binlog_bytes_per_msg",
    "peer_debezium_lost_rows",
    "peer_debezium_db_cpu_per_msg",
    "peer_debezium_broker_cpu_per_msg",
    "peer_debezium_latency_p50",
    "peer_debezium_latency_p99",
    "peer_debezium_idle_cpu_per_hour",
}


def _failures(stderr: str) -> str:
    """From the first failed component on (its traceback and diagnosis), or the end of the output."""
    first = re.search(r"^component \S+ failed:", stderr, re.MULTILINE)
    return stderr[first.start() : first.start() + 12_000] if first else stderr[-4000:]


@pytest.mark.integration
@pytest.mark.airflow
@pytest.mark.slow
@pytest.mark.timeout(1300)  # the longest test of the suite: 694 s in a clean-clone `make test` on 2 cores
def test_smoke_run_reports_every_component(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.bench", "--smoke", "--out", str(tmp_path)],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        timeout=1200,  # a hang guard (the test's own timeout is 1,300 s)
        check=False,
    )
    assert done.returncode == 0, _failures(done.stderr)
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["errors"] == {}
    assert set(report["component_seconds"]) == set(COMPONENTS)
    by_name = {r["component"]: r for r in report["results"]}
    assert set(by_name) == EXPECTED
    for name, row in by_name.items():  # a marginal cost is a difference: within noise it may be <= 0
        ticks = name.endswith(("_db_cpu_per_msg", "_broker_cpu_per_msg"))  # 10 ms ticks of a short run: >= 0
        # rows lost, and the binlog a peer that writes nothing adds: 0 is the good answer
        zero_ok = ticks or name.endswith(("_lost_rows", "_binlog_bytes_per_msg"))
        assert "marginal" in name or row["median"] > 0 or (zero_ok and row["median"] == 0), f"{name}: {row}"
        assert row["samples"], name
    verdict_of = {(r["component"], r["target"]): r["verdict"] for r in report["results"]}
    for target in TARGETS:  # every target got a ratio and a verdict (PASS or MISS, never n/a) ...
        verdicts = {"PASS", "MISS"}
        if "marginal" in (target.baseline or ""):  # ... but a difference of two 10 s windows may be <= 0
            verdicts.add("n/a (baseline not run)")
        assert verdict_of[(target.component, target.text)] in verdicts, (target, by_name[target.component])
    assert "project_relay" in done.stdout and "verdict" in done.stdout  # the printed table


def test_the_idle_figure_takes_its_designs_and_counts_from_the_command_line() -> None:
    """``--idle-designs events --idle-services 1,10,50,100``: the event-driven design alone at scale (the
    per-minute one would saturate the machine long before 100 services)."""
    from tests.benchmarks.bench import parse_args

    sizes, only, _out, _profile = parse_args(
        ["--only", "idle", "--idle-designs", "events", "--idle-services", "1,10,50,100"]
    )
    assert (sizes.idle_designs, sizes.idle_services, only) == (("events",), (1, 10, 50, 100), ["idle"])
    assert parse_args([])[0].idle_designs == ("minute", "events", "linger")
    with pytest.raises(SystemExit):
        parse_args(["--idle-designs", "events,hourly"])


def test_a_figure_with_two_targets_gets_a_row_for_each() -> None:
    """The paired project relay is judged against the plain naive loop (issue 11's target) and, in rows
    of their own, against the naive loop that records the run id too and against the lean loop."""
    from tests.benchmarks.bench import evaluate
    from tests.benchmarks.common import Result

    rows = evaluate(
        [
            Result("naive_relay_paired", 5000, "rows/s", [20_000.0]),
            Result("naive_relay_run_id_paired", 5000, "rows/s", [16_000.0]),
            Result("lean_relay_paired", 5000, "rows/s", [35_000.0]),
            Result("project_relay_paired", 5000, "rows/s", [21_000.0]),
        ]
    )
    assert [(r["component"], r["ratio"], r["verdict"]) for r in rows] == [
        ("naive_relay_paired", None, ""),
        ("naive_relay_run_id_paired", None, ""),
        ("lean_relay_paired", None, ""),
        ("project_relay_paired", 1.05, "MISS"),
        ("project_relay_paired", 1.312, "PASS"),
        ("project_relay_paired", 0.6, "MISS"),
    ]
    assert (
        rows[3]["target"] == ">= 1.2x naive" and "run id" in rows[4]["target"] and "lean" in rows[5]["target"]
    )


@pytest.mark.integration
def test_the_naive_loop_given_a_run_id_records_what_the_relay_records() -> None:
    """The like-for-like yardstick must really do the relay's SENT bookkeeping, or the comparison says
    nothing (real MariaDB and broker)."""
    from sqlalchemy import text

    from tests.benchmarks.common import (
        bench_config,
        bench_run_id,
        fresh_backlog,
        make_producer,
        scratch_db,
        temp_topics,
    )
    from tests.benchmarks.naive import run_naive

    with scratch_db("naive_run_id") as engine, temp_topics("naive_run_id") as (topic,):
        producer = make_producer(bench_config(topic, 20))
        for run_id in (None, bench_run_id()):
            fresh_backlog(engine, topic, 50)
            with engine.begin() as conn:
                conn.execute(text("UPDATE outbox_message SET next_attempt_at = NOW(6)"))
            assert run_naive(engine, producer, 20, run_id)[0] == 50
            with engine.connect() as conn:
                recorded = conn.execute(
                    text(
                        "SELECT status, relay_run_id, sent_at IS NOT NULL, next_attempt_at IS NULL, COUNT(*) "
                        "FROM outbox_message GROUP BY 1, 2, 3, 4"
                    )
                ).all()
            assert [tuple(r) for r in recorded] == [
                ("SENT", run_id, run_id is not None, run_id is not None, 50)
            ]
    assert len(bench_run_id()) == 58  # as long as an @rows run's id


def test_a_relay_childs_peak_rss_is_its_own_not_its_parents() -> None:
    """Linux keeps ``ru_maxrss`` across ``execve``: a child of a big benchmark process reported the
    parent's 311 MB as the relay's peak. The child's figure must not grow with its parent's memory."""
    ballast = bytearray(600 * 1024 * 1024)  # resident: bytearray zero-fills every page
    probe = "from tests.benchmarks.relay_child import peak_rss_kb; print(peak_rss_kb())"
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=ROOT,
        env=os.environ.copy(),
        capture_output=True,
        text=True,
        check=True,
    )
    assert len(ballast) and int(done.stdout) < 400 * 1024, done.stdout
