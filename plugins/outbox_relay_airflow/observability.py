"""What a relay run tells Airflow besides its state: metrics through Airflow's own stats (StatsD or
OpenTelemetry, as ``[metrics]`` configures them), an asset event per topic it published to, and the relay
DAG's Deadline Alert. Names and values come from ``outbox_relay.metrics``; this module only sends them.

Telemetry never fails a task: a metric that cannot be sent is logged and dropped.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.sdk import Asset, AssetAlias
from airflow.sdk.definitions.deadline import DeadlineAlert, DeadlineReference

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.metrics import Metric, metric_name
from outbox_relay_airflow import connections
from outbox_relay_airflow.compat import AsyncCallback, initialise_stats, stats

log = logging.getLogger(__name__)


def send(service: str, metrics: list[Metric]) -> None:
    """Send through Airflow's stats; tags (OpenTelemetry, tagged StatsD) carry the service too."""
    tags = {"service": service}
    for metric in metrics:
        name = metric_name(service, metric.name)
        try:
            if metric.kind == "counter":
                stats.incr(name, count=int(metric.value), tags=tags)
            elif metric.kind == "gauge":
                stats.gauge(name, metric.value, tags=tags)
            else:
                stats.timing(name, metric.value, tags=tags)
        except Exception as exc:  # telemetry must never fail the relay's committed work
            log.warning("metric %s not sent: %s: %s", name, type(exc).__name__, exc)


# --- asset events ---------------------------------------------------------------------------------


def published_alias(service: str) -> AssetAlias:
    """The relay task's outlet: an alias, so that only runs that published rows emit asset events (a task
    whose outlet is an asset emits one on every success, empty runs included)."""
    return AssetAlias(f"outbox_{service}_published")


def bootstrap_server(kafka_conn_id: str) -> str:
    """The first bootstrap server of the service's Kafka connection: the ``kafka://`` URIs' host."""
    conn = connections.get_connection(kafka_conn_id)
    servers = str((conn.extra_dejson or {}).get("bootstrap.servers") or "").split(",")[0].strip()
    if servers:
        return servers
    if conn.host:
        return f"{conn.host}:{conn.port}" if conn.port else str(conn.host)
    raise ConfigurationError(
        f"Kafka connection {kafka_conn_id!r} names no bootstrap server (extra 'bootstrap.servers')"
    )


def topic_asset(server: str, topic: str) -> Asset:
    """The asset of one topic, ``kafka://<server>/<topic>``: the Kafka provider's own URI scheme, as its
    ``assets.kafka.create_asset`` (1.14+) builds it; built here so older providers serve too."""
    return Asset(uri=f"kafka://{server}/{topic}")


def _json_value(value: Any) -> Any:
    return value if value is None or isinstance(value, int | float | str) else str(value)


def announce(config: ServiceConfig, context: dict[str, Any], run_stats: dict[str, Any]) -> list[str]:
    """Record one asset event per topic the run published to (extra: rows, first and last row id, run
    id); the task's success emits them. Returns the assets' URIs.

    A failure here is logged, not raised: failing the task would not help, its rows are SENT and a retry
    has nothing left to announce."""
    try:
        return _record_asset_events(config, context, run_stats)
    except Exception as exc:
        log.error(
            "service %s: no asset events recorded for this run (%s: %s); its rows are sent, but "
            "downstream DAGs scheduled on its topics are not triggered by it",
            config.service,
            type(exc).__name__,
            exc,
        )
        return []


def _record_asset_events(
    config: ServiceConfig, context: dict[str, Any], run_stats: dict[str, Any]
) -> list[str]:
    topics: dict[str, dict[str, Any]] = run_stats.get("topics") or {}
    outlet_events = context.get("outlet_events")
    if not topics or outlet_events is None:
        return []
    server = bootstrap_server(config.connections.kafka)
    events = outlet_events[published_alias(config.service)]
    uris = []
    for topic, acked in topics.items():
        asset = topic_asset(server, topic)
        extra = {
            "service": config.service,
            "rows": int(acked["rows"]),
            "first_row_id": _json_value(acked["first_row_id"]),
            "last_row_id": _json_value(acked["last_row_id"]),
            "run_id": str(context.get("run_id") or ""),
        }
        events.add(asset, extra=extra)
        uris.append(asset.uri)
    log.info("service %s: asset events for %s", config.service, ", ".join(uris))
    return uris


# --- deadline -------------------------------------------------------------------------------------


def relay_deadline(config: ServiceConfig) -> DeadlineAlert | None:
    """Airflow's Deadline Alert on the relay DAG: a run not done ``relay_deadline_seconds`` after it was
    queued calls the service's ``slo.deadline_callback`` (default ``relay_run_overdue``) in the triggerer."""
    seconds = config.relay_deadline_seconds
    if seconds is None:
        return None
    chosen = config.slo.deadline_callback
    callback = (
        AsyncCallback(chosen.path, kwargs=chosen.kwargs)
        if chosen is not None
        else AsyncCallback(relay_run_overdue, kwargs={"service": config.service, "limit_seconds": seconds})
    )
    return DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT, interval=timedelta(seconds=seconds), callback=callback
    )


async def relay_run_overdue(service: str, limit_seconds: float, context: dict[str, Any] | None = None) -> str:
    """The default deadline callback: a warning in the triggerer's log and the ``relay_run_overdue``
    counter. The run itself goes on; a stuck one is found by its task logs and ``SHOW PROCESSLIST``."""
    run = (context or {}).get("dag_run") or {}  # Airflow 3.3 sends the REST API's view of the run
    run_id = run.get("dag_run_id") or run.get("run_id") if isinstance(run, dict) else None
    message = (
        f"outbox relay run {run_id or '?'} of service {service} is not done {limit_seconds:g}s after it was "
        "queued (its Deadline Alert); see the run's task logs, and look for the relay lock's holder in "
        "SHOW PROCESSLIST"
    )
    log.warning("%s", message)
    initialise_stats()
    send(service, [Metric("counter", "relay_run_overdue", 1)])
    return message
