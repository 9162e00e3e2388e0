"""The Airflow side of observability, without a scheduler: metrics reach a real StatsD (UDP) listener
through Airflow's own stats, asset events are recorded only for topics a run published to, and the relay
DAG's Deadline Alert follows the service's ``slo``."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from airflow.sdk import AssetAlias
from airflow.sdk.execution_time.context import OutletEventAccessors
from airflow.sdk.observability import stats

from outbox_relay.config import ServiceConfig
from outbox_relay.metrics import Metric
from outbox_relay_airflow import observability
from outbox_relay_airflow.compat import initialise_stats
from outbox_relay_airflow.dag_factory import relay_dag


@pytest.fixture
def statsd(monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """A UDP socket that Airflow's [metrics] StatsD settings point at."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_ON", "True")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_HOST", "127.0.0.1")
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PORT", str(listener.getsockname()[1]))
    monkeypatch.setenv("AIRFLOW__METRICS__STATSD_PREFIX", "airflow")
    try:
        yield listener
    finally:
        listener.close()
        from airflow.sdk._shared.observability.metrics.base_stats_logger import NoStatsLogger

        stats.initialize(factory=NoStatsLogger, export_legacy_names=True)


def _received(listener: socket.socket, count: int) -> list[str]:
    return [listener.recv(4096).decode() for _ in range(count)]


def test_metrics_go_out_through_airflows_statsd_settings(statsd: socket.socket) -> None:
    initialise_stats()
    observability.send("billing", [Metric("counter", "published", 3), Metric("gauge", "backlog", 12),
                                   Metric("timing", "relay_run", 1500.0)])  # fmt: skip
    assert _received(statsd, 3) == [
        "airflow.outbox_relay.billing.published:3|c",
        "airflow.outbox_relay.billing.backlog:12|g",
        "airflow.outbox_relay.billing.relay_run:1500.000000|ms",
    ]


def test_the_default_deadline_callback_warns_and_counts(statsd: socket.socket) -> None:
    context = {"dag_run": {"dag_id": "outbox_billing_relay", "dag_run_id": "scheduled__2026-11-29"}}
    message = asyncio.run(observability.relay_run_overdue("billing", 600, context=context))
    assert "run scheduled__2026-11-29 of service billing is not done 600s after it was queued" in message
    assert _received(statsd, 1) == ["airflow.outbox_relay.billing.relay_run_overdue:1|c"]


def _config(**fields: Any) -> ServiceConfig:
    return ServiceConfig.model_validate({"service": "billing", "topic": "billing.events", **fields})


def test_the_relay_dag_has_a_deadline_that_follows_the_slo() -> None:
    default = relay_dag(_config()).deadline
    alert = default[0] if isinstance(default, list) else default
    assert alert is not None and alert.interval == timedelta(seconds=300 + 300)  # time budget + margin
    assert alert.callback.path == "outbox_relay_airflow.observability.relay_run_overdue"
    assert alert.callback.kwargs == {"service": "billing", "limit_seconds": 600}
    assert observability.relay_deadline(_config(slo={"max_relay_run_seconds": 0})) is None
    own = observability.relay_deadline(_config(slo={
        "max_relay_run_seconds": 90, "deadline_callback": {"path": "team.alerts.page", "kwargs": {"to": "ops"}},
    }))  # fmt: skip
    assert own is not None and own.interval == timedelta(seconds=90)
    assert (own.callback.path, own.callback.kwargs) == ("team.alerts.page", {"to": "ops"})
    with pytest.raises(ValueError, match=r"deadline_callback\.path"):
        _config(slo={"deadline_callback": {"path": "not a path"}})
    assert relay_dag(_config()).get_task("relay").outlets == [AssetAlias("outbox_billing_published")]


def test_asset_events_name_each_topic_published_to(monkeypatch: pytest.MonkeyPatch) -> None:
    kafka = {"conn_type": "kafka", "extra": {"bootstrap.servers": "broker-1:9092,broker-2:9092"}}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps(kafka))
    events = OutletEventAccessors()
    stats_ = {"topics": {"billing.events": {"rows": 3, "first_row_id": 10, "last_row_id": 12},
                         "billing.audit": {"rows": 1, "first_row_id": b"\x01", "last_row_id": b"\x01"}}}  # fmt: skip
    context = {"outlet_events": events, "run_id": "manual__1"}
    uris = observability.announce(_config(), context, stats_)
    assert uris == ["kafka://broker-1:9092/billing.events", "kafka://broker-1:9092/billing.audit"]
    recorded = events[AssetAlias("outbox_billing_published")].asset_alias_events
    assert (recorded[0].dest_asset_key.uri, recorded[0].extra) == (
        "kafka://broker-1:9092/billing.events",
        {"service": "billing", "rows": 3, "first_row_id": 10, "last_row_id": 12, "run_id": "manual__1"},
    )
    assert recorded[1].extra["first_row_id"] == "b'\\x01'"  # JSON-safe
    empty = OutletEventAccessors()
    assert observability.announce(_config(), {"outlet_events": empty}, {"topics": {}}) == []
    assert empty[AssetAlias("outbox_billing_published")].asset_alias_events == []


def test_an_asset_event_that_cannot_be_recorded_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps({"conn_type": "kafka", "extra": {}}))
    stats_ = {"topics": {"billing.events": {"rows": 1, "first_row_id": 1, "last_row_id": 1}}}
    assert observability.announce(_config(), {"outlet_events": OutletEventAccessors()}, stats_) == []
    assert "names no bootstrap server" in caplog.text and "its rows are sent" in caplog.text


def test_dags_test_gets_no_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    """``airflow dags test`` fails a DAG with a deadline at the end of a good run (apache/airflow#73428)."""
    monkeypatch.setattr("sys.argv", ["/venv/bin/airflow", "dags", "test", "outbox_billing_relay"])
    assert not relay_dag(_config()).deadline
    monkeypatch.setattr("sys.argv", ["/venv/bin/airflow", "dag-processor"])
    assert relay_dag(_config()).deadline
