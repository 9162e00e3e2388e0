"""What a relay run tells Airflow, on a real scheduler + triggerer + api-server: its metrics reach a real
StatsD listener over UDP through Airflow's [metrics] settings, a run that published rows triggers a DAG
scheduled on its topic's asset (and a run that published nothing does not), a run slower than its
deadline makes the triggerer call the deadline callback, a clean run is green and an SLO breach red."""

from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.airflow.airflow_stack import ROOT, AirflowStack, airflow_stack
from tests.integration.kafka_tools import create_topics, send
from tests.integration.outbox_rows import insert_rows
from tests.stack import BOOTSTRAP, airflow_connections, service_folder

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

RELAY = "outbox_shipping_relay"
CONFIRMATIONS = "outbox_shipping_confirmations"
DOWNSTREAM = "downstream_of_shipping"
DOWNSTREAM_DAG = """
from datetime import datetime, timezone

from airflow.sdk import DAG, Asset, task

TOPIC = Asset("kafka://{bootstrap}/{topic}")

with DAG("{dag_id}", schedule=[TOPIC], start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
         is_paused_upon_creation=False):

    @task
    def seen(*, triggering_asset_events=None):
        return [dict(event.extra) for event in triggering_asset_events[TOPIC]]

    seen()
"""


@contextmanager
def statsd_listener() -> Iterator[tuple[int, list[str]]]:
    """A UDP socket collecting every StatsD packet sent to it, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    packets: list[str] = []
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            try:
                packets.extend(sock.recv(65535).decode().splitlines())
            except TimeoutError:
                continue

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1], packets
    finally:
        stop.set()
        thread.join(5)
        sock.close()


def _wait_for_packet(packets: list[str], wanted: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while wanted not in packets:
        assert time.monotonic() < deadline, f"no StatsD packet {wanted!r}; ours: {_ours(packets)}"
        time.sleep(0.5)


def _ours(packets: list[str]) -> list[str]:
    return [p for p in packets if ".outbox_relay." in p]


def _downstream_runs(stack: AirflowStack) -> list[str]:
    runs = stack.api("GET", f"/dags/{DOWNSTREAM}/dagRuns")["dag_runs"]
    return [r["dag_run_id"] for r in runs]


def _asset_events(stack: AirflowStack, uri: str) -> list[dict[str, object]]:
    rows = stack.metadata(
        "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = %s ORDER BY e.id",
        uri,
    )
    return [r[0] if isinstance(r[0], dict) else json.loads(r[0]) for r in rows]


def _row_ids(engine: Engine, message_ids: list[str]) -> list[int]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT message_id, id FROM outbox_message")).all()
    ids = dict(found)
    return [int(ids[m]) for m in message_ids]


def _hold_back_and_run(stack: AirflowStack, engine: Engine, topic: str) -> str:
    """A row of key k waits for its retry; the hour-old row behind it is held back: the run publishes
    nothing (no asset event, no downstream run) and the SLO is breached: a red run."""
    _hold_back_an_old_row(engine, topic)
    red = stack.trigger(RELAY, {})
    assert stack.wait_for_run(RELAY, red) == "failed"
    return red


def _answered_failed_beyond_the_slo(stack: AirflowStack, engine: Engine, topic: str) -> None:
    """Two FAILED answers in the hour, one more than slo.max_failed_answers_per_hour: the confirmations run
    applies them and then turns red at its check_health (its message: tests/integration/test_health.py)."""
    rejected = insert_rows(engine, topic, ["x", "y"])
    with engine.begin() as conn:
        for message_id in rejected:
            conn.execute(text("UPDATE outbox_message SET status = 'SENT', sent_at = NOW(6) WHERE message_id = :m"),
                         {"m": message_id})  # fmt: skip
    answers = [{"message_id": m, "status": "FAILED", "error": "out of stock"} for m in rejected]
    send(f"{topic}.results", [(None, json.dumps(a).encode()) for a in answers])
    red = stack.trigger(CONFIRMATIONS, {})
    assert stack.wait_for_run(CONFIRMATIONS, red) == "failed"
    assert stack.wait_for_task(CONFIRMATIONS, red, "ingest_confirmations", {"success"}, 5) == "success"
    assert stack.wait_for_task(CONFIRMATIONS, red, "check_health", {"failed"}, 5) == "failed"
    with engine.connect() as conn:
        failed = conn.execute(text("SELECT COUNT(*) FROM outbox_message WHERE status = 'FAILED'")).scalar()
    assert failed == 2  # the answers were applied before the check turned the run red


def _hold_back_an_old_row(engine: Engine, topic: str) -> None:
    (waiting,) = insert_rows(engine, topic, ["k"], age_seconds=3600)
    insert_rows(engine, topic, ["k"], age_seconds=3600)
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE outbox_message SET attempts = 1, last_error = 'broker said no', "
                 "next_attempt_at = NOW(6) + INTERVAL 1 HOUR WHERE message_id = :m"), {"m": waiting},
        )  # fmt: skip


@pytest.mark.slow
def test_metrics_asset_events_and_the_deadline_of_real_runs(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("observed")
    create_topics(topic, f"{topic}.results")
    dags = tmp_path / "dags"
    dags.mkdir()
    services = service_folder(
        tmp_path,
        "shipping",
        f"topic: {topic}\nschedule: null\nconfirm_schedule: null\nretention: null\nthreshold_seconds: 0\n"
        f"confirmation: {{topic: {topic}.results}}\nstart_paused: false\n"
        # Every run takes longer than 1 s: each misses its deadline.
        "slo: {max_relay_run_seconds: 1, max_oldest_new_seconds: 600, max_failed_answers_per_hour: 1}\n",
    )
    shutil.copy(ROOT / "dags" / "outbox_services.py", dags)
    uri = f"kafka://{BOOTSTRAP}/{topic}"
    (dags / "downstream.py").write_text(
        DOWNSTREAM_DAG.format(bootstrap=BOOTSTRAP, topic=topic, dag_id=DOWNSTREAM)
    )
    message_ids = insert_rows(db_engine, topic, ["a", "b", "c"])
    first, _, last = _row_ids(db_engine, message_ids)

    with statsd_listener() as (port, packets):
        env = {
            "OUTBOX_RELAY_SERVICES_DIR": str(services),
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__METRICS__STATSD_ON": "True",
            "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
            "AIRFLOW__METRICS__STATSD_PORT": str(port),
            **airflow_connections(db_engine),
        }
        with airflow_stack(tmp_path / "airflow", env, triggerer=True) as stack:
            stack.wait_for_dag(RELAY)
            stack.wait_for_dag(DOWNSTREAM)

            published = stack.trigger(RELAY, {})
            assert stack.wait_for_run(RELAY, published) == "success"
            _wait_for_packet(packets, "airflow.outbox_relay.shipping.published:3|c")
            _wait_for_packet(packets, "airflow.outbox_relay.shipping.backlog:0|g")
            _wait_for_packet(packets, "airflow.outbox_relay.shipping.unconfirmed:3|g")
            assert _asset_events(stack, uri) == [
                {
                    "service": "shipping",
                    "rows": 3,
                    "first_row_id": first,
                    "last_row_id": last,
                    "run_id": published,
                }
            ]
            deadline = time.monotonic() + 120
            while not _downstream_runs(stack):
                assert time.monotonic() < deadline, "the asset event triggered no downstream run"
                time.sleep(1)
            (downstream,) = _downstream_runs(stack)
            assert stack.wait_for_run(DOWNSTREAM, downstream) == "success"
            seen = stack.metadata(
                "SELECT value FROM xcom WHERE dag_id = %s AND run_id = %s AND task_id = 'seen'",
                DOWNSTREAM,
                downstream,
            )
            value = seen[0][0] if isinstance(seen[0][0], list) else json.loads(seen[0][0])
            assert value == [_asset_events(stack, uri)[0]]

            # The triggerer ran the default deadline callback for an overdue run (on a loaded machine
            # Airflow may only get to the later runs' deadlines; the failure shows its deadline rows).
            red = _hold_back_and_run(stack, db_engine, topic)
            try:
                stack.wait_for_log("triggerer", "of service shipping is not done 1s after it was queued", 120)
            except AssertionError:
                deadlines = stack.metadata("SELECT dagrun_id, deadline_time, missed FROM deadline")
                raise AssertionError(f"no deadline callback ran; deadline rows: {deadlines}") from None
            _wait_for_packet(packets, "airflow.outbox_relay.shipping.relay_run_overdue:1|c")
            assert stack.wait_for_task(RELAY, red, "relay", {"success"}, 5) == "success"
            assert stack.wait_for_task(RELAY, red, "check_health", {"failed"}, 5) == "failed"

            confirmations = [
                (None, json.dumps({"message_id": m, "status": "SUCCESS"}).encode()) for m in message_ids
            ]
            send(f"{topic}.results", confirmations)
            confirmed = stack.trigger("outbox_shipping_confirmations", {})
            assert stack.wait_for_run("outbox_shipping_confirmations", confirmed) == "success"
            _wait_for_packet(packets, "airflow.outbox_relay.shipping.confirmed:3|c")
            assert len(_asset_events(stack, uri)) == 1 and len(_downstream_runs(stack)) == 1
            _answered_failed_beyond_the_slo(stack, db_engine, topic)

    ours = _ours(packets)
    assert "airflow.outbox_relay.shipping.published:0|c" in ours  # the red run's counters are sent too
    assert any(p.startswith("airflow.outbox_relay.shipping.relay_run:") and p.endswith("|ms") for p in ours)
    assert any(p.startswith("airflow.outbox_relay.shipping.batch_publish:") for p in ours)
