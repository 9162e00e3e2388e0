"""Task bodies: each builds clients from Airflow connections and hands them to the relay core."""

from __future__ import annotations

import functools
import logging
import uuid
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Connection

from outbox_relay.audit import Auditor, AuditReport
from outbox_relay.config import ServiceConfig
from outbox_relay.confirmations import ConfirmationIngester
from outbox_relay.errors import (
    ConfigurationError,
    DiscrepancyError,
    MissingConfigurationError,
)
from outbox_relay.health import HealthCheck
from outbox_relay.kafka.topics import ensure_topics, service_topics
from outbox_relay.metrics import cleanup_metrics, confirmation_metrics, gauges, relay_metrics
from outbox_relay.models import Window
from outbox_relay.reconciliation import (
    Reconciler,
    ReconciliationReport,
    parse_time,
    purge_consumer_table,
)
from outbox_relay.relay.engine import LOCK_BUSY, OutboxRelay, RunRequest
from outbox_relay.replay import ReplayAudit
from outbox_relay.retention import RetentionCleaner
from outbox_relay_airflow.compat import AirflowFailException
from outbox_relay_airflow.heap import frozen_heap
from outbox_relay_airflow.hooks import (
    OutboxConsumerHook,
    OutboxDatabaseHook,
    admin_client,
    db_engine,
    service_publisher,
)
from outbox_relay_airflow.observability import announce, send
from outbox_relay_airflow.services_folder import read_service

log = logging.getLogger(__name__)

BACKFILL_RUN_TYPES = {"backfill", "backfill_job"}
P = ParamSpec("P")
R = TypeVar("R")


def fail_without_retry(body: Callable[P, R]) -> Callable[P, R]:
    """A bad config or a found discrepancy fails the task at once: a retry would read the same file or
    rescan the same window. Broker and database trouble keep Airflow's retries."""

    @functools.wraps(body)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return body(*args, **kwargs)
        except (ConfigurationError, DiscrepancyError) as exc:
            raise AirflowFailException(
                f"{type(exc).__name__}: {exc} (not retried: a retry cannot fix this)"
            ) from exc

    return run


def _naive_in(moment: datetime, config: ServiceConfig) -> datetime:
    """Convert an aware Airflow timestamp to the naive local time the service's DB stores."""
    return moment.astimezone(config.db_tzinfo).replace(tzinfo=None)


def window_for(context: dict[str, Any], config: ServiceConfig) -> Window | None:
    """Backfill runs re-scan their data interval; scheduled and manual runs relay everything eligible."""
    dag_run = context.get("dag_run")
    run_type = str(getattr(dag_run, "run_type", "") or "").lower().split(".")[-1]
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if run_type not in BACKFILL_RUN_TYPES or start is None or end is None or start >= end:
        return None
    return Window(_naive_in(start, config), _naive_in(end, config))


@fail_without_retry
def run_ensure_topics(service: str, services_dir: str | Path | None = None) -> list[str]:
    config = read_service(service, services_dir)
    return ensure_topics(
        admin_client(config.connections.kafka), service_topics(config), config.kafka.replication_factor
    )


@fail_without_retry
@frozen_heap
def run_relay(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None, shard: int | None = None
) -> dict[str, Any]:
    config = read_service(service, services_dir)
    if shard is not None and shard >= config.shards:  # the file changed since the run was planned
        log.warning(
            "service %s has %s shard(s) now: shard %s has nothing to do", service, config.shards, shard
        )
        return {"skipped": f"shard {shard} of a service with {config.shards} shard(s)", "shard": shard}
    params = context.get("params") or {}
    window = window_for(context, config)
    republish = bool(params.get("republish")) and window is not None
    if params.get("republish") and window is None:
        log.warning("republish=true is only honoured by backfill runs (they have a window); ignored")
    publisher = service_publisher(config)
    engine = db_engine(config)
    try:
        relay = OutboxRelay(config, engine, publisher)
        request = RunRequest(
            run_id=str(context.get("run_id") or "manual"),
            window=window,
            republish=republish,
            replay=_backfill_audit(context, window) if republish else None,
            time_budget_seconds=params.get("time_budget_seconds") or None,
            shard=shard if config.shards > 1 else None,
        )
        log.info("relaying %s: window=%s republish=%s shard=%s", service, window, republish, request.shard)
        stats = relay.run(request).as_dict()
    finally:
        engine.dispose()
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


def _backfill_audit(context: dict[str, Any], window: Window | None) -> ReplayAudit:
    """Who a backfill's republish is recorded for in the replay history, and why."""
    user = getattr(context.get("dag_run"), "triggering_user_name", None) or "airflow"
    span = f"[{window.start}, {window.end})" if window else ""
    return ReplayAudit(str(user), f"backfill republish of {span}", str(context.get("run_id") or "manual"))


class ServiceUnhealthyError(DiscrepancyError):
    """The relay run gave up on rows, or the service is outside its SLO: the run turns red (no retry)."""


@fail_without_retry
def run_check_health(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """The relay DAG's last task: fail the run when it gave up on rows or the service breaches its SLO."""
    config = read_service(service, services_dir)
    ti = context.get("ti")
    stats = _relay_stats(ti.xcom_pull(task_ids="relay") if ti is not None else None)
    check = HealthCheck(config)
    figures = _read_once(config, check.figures)
    send(config.service, gauges(figures))
    problems = check.problems(stats, figures)
    if problems:
        raise ServiceUnhealthyError(" | ".join(problems))
    return {"healthy": True, "figures": figures, "checked": {"slo": config.slo.model_dump()}}


def _read_once(config: ServiceConfig, read: Callable[[Connection], R]) -> R:
    """``read`` on one connection of an engine that lives only for it (a task process reads once)."""
    engine = db_engine(config, pool_size=1)
    try:
        with engine.connect() as conn:
            return read(conn)
    finally:
        engine.dispose()


@fail_without_retry
def run_check_answers(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """The confirmations DAG's last task: fail the run when the consumers' FAILED answers of the last hour
    breach the SLO (``slo.max_failed_answer_share``, ``slo.max_failed_answers_per_hour``)."""
    config = read_service(service, services_dir)
    check = HealthCheck(config)
    figures = _read_once(config, check.answer_figures)
    problems = check.answer_problems(figures)
    if problems:
        raise ServiceUnhealthyError(" | ".join(problems))
    return {"healthy": True, "figures": figures}


def _relay_stats(pulled: Any) -> dict[str, Any]:
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


class RelayLockWedgedError(DiscrepancyError):
    """Relay runs of a table found its lock held run after run: its holder may be wedged (not retried: the
    runs in a row are the finding)."""


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


@fail_without_retry
@frozen_heap
def run_confirmations(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    config = read_service(service, services_dir)
    if config.confirmation is None:
        return {"skipped": "service has no confirmation topic"}
    hook = OutboxConsumerHook(
        [config.confirmation.topic], config.connections.kafka, config.confirmation_group_id
    )
    consumer = hook.get_consumer()
    engine = db_engine(config)
    try:
        budget = float((context.get("params") or {}).get("time_budget_seconds") or config.time_budget_seconds)
        stats = ConfirmationIngester(config, engine, consumer).run(budget).as_dict()
    finally:
        consumer.close()
        engine.dispose()
    send(config.service, confirmation_metrics(stats))
    return stats


@fail_without_retry
@frozen_heap
def run_cleanup(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    config = read_service(service, services_dir)
    if config.retention is None:
        return {"skipped": "retention disabled"}
    engine = db_engine(config)
    try:
        budget = float((context.get("params") or {}).get("time_budget_seconds") or config.time_budget_seconds)
        stats = RetentionCleaner(config, engine).run(budget).as_dict()
    finally:
        engine.dispose()
    send(config.service, cleanup_metrics(stats))
    if config.reconciliation is not None and config.reconciliation.retention is not None:
        consumer_engine = _consumer_engine(config)
        try:
            stats["consumer_table"] = purge_consumer_table(config, consumer_engine).as_dict()
        finally:
            consumer_engine.dispose()
    return stats


def audit(
    config: ServiceConfig, since: datetime, until: datetime | None, max_listed: int | None = 100
) -> AuditReport:
    """Read the service's topics back and compare them with its table; aware times are converted to the
    service's DB time zone. ``max_listed``: message ids listed per class (None: all)."""
    since = since if since.tzinfo is None else _naive_in(since, config)
    until = until if until is None or until.tzinfo is None else _naive_in(until, config)
    auditor = Auditor(config, max_listed)  # a configuration that cannot be audited says so first
    group = f"outbox-audit-{config.service}-{uuid.uuid4().hex[:8]}"  # assigned, never committed
    consumer = OutboxConsumerHook([], config.connections.kafka, group).get_conn
    engine = db_engine(config, pool_size=1)
    try:
        return auditor.run(engine, consumer, since, until)
    finally:
        consumer.close()
        engine.dispose()


class ReconciliationDiscrepancyError(DiscrepancyError):
    """Reconciliation found messages sent but never consumed, or consumed but never marked sent."""


def _consumer_engine(config: ServiceConfig) -> Any:
    assert config.reconciliation is not None
    conn_id = config.reconciliation.connection or config.connections.db
    return OutboxDatabaseHook(conn_id).get_engine(config.db_time_zone, pool_size=1)


def reconcile(
    config: ServiceConfig,
    since: datetime | None,
    until: datetime | None,
    redeliver: bool = False,
    include_failed: bool = False,
) -> ReconciliationReport:
    """Run one reconciliation; aware datetimes are converted to the service's DB time zone."""
    if config.reconciliation is None:
        raise MissingConfigurationError(
            f"service {config.service!r} has no 'reconciliation' section in its config"
        )
    since, until = (None if t is None or t.tzinfo is None else _naive_in(t, config) for t in (since, until))
    engine = db_engine(config, pool_size=1)
    consumer = _consumer_engine(config) if config.reconciliation.connection else None
    try:
        return Reconciler(config, engine, consumer).run(since, until, redeliver, include_failed)
    finally:
        engine.dispose()
        if consumer is not None:
            consumer.dispose()


def _param_time(params: dict[str, Any], name: str) -> datetime | None:
    value = params.get(name)
    return None if value in (None, "") else parse_time(str(value), f"param {name!r}")


@fail_without_retry
def run_reconciliation(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """The reconciliation DAG's task: params since/until, else a scheduled run's data interval, else the
    last ``window_hours``. Missing messages fail the task (``on_discrepancy: fail``) unless re-delivered."""
    config = read_service(service, services_dir)
    params = context.get("params") or {}
    since, until = _param_time(params, "since"), _param_time(params, "until")
    run_type = str(getattr(context.get("dag_run"), "run_type", "") or "").lower().split(".")[-1]
    if since is None and until is None and run_type in {"scheduled", *BACKFILL_RUN_TYPES}:
        since, until = context.get("data_interval_start"), context.get("data_interval_end")
    redeliver = bool(params.get("redeliver"))
    report = reconcile(config, since, until, redeliver, bool(params.get("include_failed")))
    log.info("%s", report.summary())
    log.info("service %s reconciliation: %s", service, {**report.counts, "checked": report.checked})
    for category, items in report.listed.items():
        for item in items:
            log.warning("%s: %s", category, item)
    assert config.reconciliation is not None
    if report.missing and not redeliver:
        message = (
            f"{report.summary()}. Re-deliver with: python -m outbox_relay_airflow.cli reconcile {service} "
            f"--since '{report.since}' --until '{report.until}' --redeliver (or trigger with redeliver=true)"
        )
        if config.reconciliation.on_discrepancy == "fail":
            raise ReconciliationDiscrepancyError(message)
        log.warning("%s", message)
    result = report.as_dict()  # XCom keeps the first ids of each category; the log lists all of them
    result["listed"] = {category: items[:20] for category, items in report.listed.items()}
    return result
