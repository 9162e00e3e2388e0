"""The relay DAG's tasks: ensure the topics, relay (once, or one mapped task per shard), announce a sharded
run's topics, and check the service's health."""

from __future__ import annotations

import logging
from contextlib import suppress
from pathlib import Path
from typing import Any

from outbox_relay.config import ServiceConfig
from outbox_relay.health import HealthCheck
from outbox_relay.metrics import gauges, relay_metrics
from outbox_relay.models import HistoryEntry, Window
from outbox_relay.relay.engine import LOCK_BUSY
from outbox_relay.relay.run_request import RunKind, RunRequest
from outbox_relay.requests import RelayRequest
from outbox_relay_airflow import operations
from outbox_relay_airflow.observability import announce, send
from outbox_relay_airflow.services_folder import read_service
from outbox_relay_airflow.tasks.common import BACKFILL_RUN_TYPES, data_interval, history_entry
from outbox_relay_airflow.tasks.failures import (
    RelayLockWedgedError,
    ServiceUnhealthyError,
    fail_without_retry,
)

log = logging.getLogger(__name__)


def window_for(context: dict[str, Any], config: ServiceConfig) -> Window | None:
    """Backfill runs re-scan their data interval; scheduled and manual runs relay everything eligible."""
    return data_interval(context, config, BACKFILL_RUN_TYPES)


@fail_without_retry
def run_ensure_topics(service: str, services_dir: str | Path | None = None) -> list[str]:
    return operations.create_topics(read_service(service, services_dir))


def _backfill_history(context: dict[str, Any], window: Window) -> HistoryEntry:
    """Who a backfill run's republish is recorded for in the row history, and why."""
    return history_entry(context, f"backfill republish of [{window.start}, {window.end})", "airflow")


def run_request(config: ServiceConfig, request: RelayRequest, context: dict[str, Any]) -> RunRequest:
    """The engine's request for this DAG run: a backfill run re-scans its interval (and republishes when
    asked), any other run relays what is eligible, of one shard when the task is mapped."""
    window = window_for(context, config)
    if request.republish and window is None:
        log.warning("republish=true is only honoured by backfill runs (they have a window); ignored")
    republish = request.republish and window is not None
    return RunRequest(
        kind=RunKind.RELAY if window is None else RunKind.BACKFILL,
        run_id=str(context.get("run_id") or "manual"),
        window=window,
        republish=republish,
        history=_backfill_history(context, window) if republish and window is not None else None,
        time_budget_seconds=request.time_budget_seconds,
        shard=request.shard if config.shards > 1 else None,
    )


@fail_without_retry
def run_relay(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None, shard: int | None = None
) -> dict[str, Any]:
    config = read_service(service, services_dir)
    if shard is not None and shard >= config.shards:  # the file changed since the run was planned
        log.warning(
            "service %s has %s shard(s) now: shard %s has nothing to do", service, config.shards, shard
        )
        return {"skipped": f"shard {shard} of a service with {config.shards} shard(s)", "shard": shard}
    request = RelayRequest.parse({**(context.get("params") or {}), "shard": shard})
    engine_request = run_request(config, request, context)
    log.info(
        "relaying %s: window=%s republish=%s shard=%s",
        service,
        engine_request.window,
        engine_request.republish,
        engine_request.shard,
    )
    stats = operations.relay(config, engine_request)
    send(config.service, relay_metrics(stats))
    # A sharded service's shards announce nothing: the first event for a topic makes Airflow create its
    # asset, and two shards doing that at once fail one of them (a unique-key race in the metadata DB).
    # ``run_announce_topics`` announces the shards' topics once, after them.
    stats["asset_events"] = announce(config, context, stats) if config.shards == 1 else []
    return check_lock_busy_runs(config, stats)


def run_announce_topics(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> list[str]:
    """The asset events of a sharded relay run: one per topic its shards published to, rows added up."""
    config = read_service(service, services_dir)
    ti = context.get("ti")
    pulled = ti.xcom_pull(task_ids="relay") if ti is not None else None
    return announce(config, context, {"topics": merged_topics(pulled)})


def merged_topics(pulled: Any) -> dict[str, dict[str, Any]]:
    """The shards' per-topic tallies (``RunStats.topics``) as one: rows added, the lowest first row id and
    the highest last row id (each shard's own, when the ids do not compare)."""
    merged: dict[str, dict[str, Any]] = {}
    shards = [pulled] if isinstance(pulled, dict) else list(pulled or [])
    for stats in shards:
        for topic, tally in ((stats or {}).get("topics") or {}).items():
            entry = merged.get(topic)
            if entry is None:
                merged[topic] = dict(tally)
                continue
            entry["rows"] += tally["rows"]
            with suppress(TypeError):
                entry["first_row_id"] = min(entry["first_row_id"], tally["first_row_id"])
                entry["last_row_id"] = max(entry["last_row_id"], tally["last_row_id"])
    return merged


@fail_without_retry
def run_check_health(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """The relay DAG's last task: fail the run when it gave up on rows or the service breaches its SLO
    (the relay's work is committed either way)."""
    config = read_service(service, services_dir)
    ti = context.get("ti")
    stats = relay_stats(ti.xcom_pull(task_ids="relay") if ti is not None else None)
    check = HealthCheck(config)
    figures = operations.read_once(config, check.figures)
    send(config.service, gauges(figures))
    problems = check.problems(stats, figures)
    if problems:
        raise ServiceUnhealthyError(" | ".join(problems))
    return {"healthy": True, "figures": figures, "checked": {"slo": config.slo.model_dump()}}


def relay_stats(pulled: Any) -> dict[str, Any]:
    """The relay task's statistics; a sharded service's mapped relay tasks give one dict per shard, whose
    counts add up."""
    if isinstance(pulled, dict):
        return pulled
    if pulled is None or isinstance(pulled, (str, bytes)):
        return {}
    merged: dict[str, Any] = {}
    for one in pulled:
        for name, value in (one or {}).items():
            if isinstance(value, int) and not isinstance(value, bool):
                merged[name] = merged.get(name, 0) + value
    return merged


def check_lock_busy_runs(config: ServiceConfig, stats: dict[str, Any]) -> dict[str, Any]:
    """A run that found the table's lock held relays nothing, and that is normal once (a long run is going
    on). The runs in a row are counted in the outbox database (``RunStats.lock_busy_runs``); at
    ``relay_lock_busy_runs_to_fail`` the run fails, naming the holder's connection id."""
    count, limit = stats.get("lock_busy_runs"), config.relay_lock_busy_runs_to_fail
    if stats.get("stopped_because") == LOCK_BUSY and limit and count is not None and count >= limit:
        holder = stats.get("lock_holder_connection_id")
        raise RelayLockWedgedError(
            f"service {config.service}: {count} relay runs in a row found the relay lock of {config.table} "
            f"held (holder: MySQL connection id {holder}). If that session is stuck, inspect it with "
            f"SHOW PROCESSLIST and end it with KILL {holder}; the lock is released with the connection."
        )
    return stats
