"""Each operation run once with clients built from Airflow connections: what the DAGs' tasks and the CLI both
call. Nothing here reads a task context, so the CLI never pretends to be a task."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from outbox_relay.audit import Auditor, AuditReport
from outbox_relay.backfill import Backfiller, BackfillReport
from outbox_relay.checks import CheckReport, check_broker, check_database
from outbox_relay.config import ServiceConfig
from outbox_relay.confirmations import ConfirmationIngester
from outbox_relay.database import OutboxStore
from outbox_relay.errors import MissingConfigurationError
from outbox_relay.explain import Explainer, Explanation
from outbox_relay.kafka.topics import ensure_topics, service_topics, topic_settings
from outbox_relay.models import DEAD_LETTER, UNCONFIRMED, BackfillJob, ReplayJob, Window
from outbox_relay.reconciliation import Reconciler, ReconciliationReport, purge_consumer_table
from outbox_relay.relay.engine import RunRequest
from outbox_relay.replay import DeadLetterReplayer, Replayer, ReplayReport
from outbox_relay.requests import AuditRequest, ReconcileRequest
from outbox_relay.retention import RetentionCleaner
from outbox_relay_airflow.heap import frozen_heap
from outbox_relay_airflow.hooks import (
    OutboxConsumerHook,
    OutboxDatabaseHook,
    admin_client,
    db_engine,
    service_publisher,
)
from outbox_relay_airflow.relays import service_relay

R = TypeVar("R")


def read_once(config: ServiceConfig, read: Callable[[Connection], R]) -> R:
    """``read`` on one connection of an engine that lives only for it (a task process reads once)."""
    engine = db_engine(config, pool_size=1)
    try:
        with engine.connect() as conn:
            return read(conn)
    finally:
        engine.dispose()


def create_topics(config: ServiceConfig) -> list[str]:
    """Create the service's topics that do not exist yet; the ones created."""
    admin = admin_client(config.connections.kafka)
    return ensure_topics(
        admin, service_topics(config), config.kafka.replication_factor, settings=topic_settings(config)
    )


@frozen_heap
def relay(config: ServiceConfig, request: RunRequest) -> dict[str, Any]:
    """One relay run (scheduled, a shard, a backfill interval): its statistics."""
    engine = db_engine(config)
    try:
        with service_relay(config, engine, request.shard) as relay:
            return relay.run(request).as_dict()
    finally:
        engine.dispose()


@frozen_heap
def confirm(config: ServiceConfig, budget_seconds: float | None) -> dict[str, Any]:
    """Ingest the service's confirmation topic for up to ``budget_seconds`` (None: the service's budget)."""
    if config.confirmation is None:
        return {"skipped": "service has no confirmation topic"}
    hook = OutboxConsumerHook(
        [config.confirmation.topic], config.connections.kafka, config.confirmation_group_id
    )
    consumer = hook.get_consumer()
    engine = db_engine(config)
    try:
        budget = budget_seconds or config.time_budget_seconds
        return ConfirmationIngester(config, engine, consumer).run(budget).as_dict()
    finally:
        consumer.close()
        engine.dispose()


@frozen_heap
def cleanup(config: ServiceConfig, budget_seconds: float | None) -> dict[str, Any]:
    """Retention: delete the service's old terminal rows (and the consumers' table's, when configured)."""
    if config.retention is None:
        return {"skipped": "retention disabled"}
    engine = db_engine(config)
    try:
        stats = RetentionCleaner(config, engine).run(budget_seconds or config.time_budget_seconds).as_dict()
    finally:
        engine.dispose()
    if config.reconciliation is not None and config.reconciliation.retention is not None:
        consumer_engine = _consumer_engine(config)
        try:
            stats["consumer_table"] = purge_consumer_table(config, consumer_engine).as_dict()
        finally:
            consumer_engine.dispose()
    return stats


def _replay_dead_letters(config: ServiceConfig, job: ReplayJob, engine: Engine) -> ReplayReport:
    group = f"outbox-replay-{config.service}-{uuid.uuid4().hex[:8]}"  # assigned, never committed
    consumer = OutboxConsumerHook([], config.connections.kafka, group).get_conn
    try:
        publisher = None if job.dry_run else service_publisher(config)
        return DeadLetterReplayer(config, engine).run(job, consumer, publisher)
    finally:
        consumer.close()


@frozen_heap
def replay(config: ServiceConfig, job: ReplayJob) -> ReplayReport:
    """One replay with the service's database and (for SENT rows and dead letters) its producer."""
    engine = db_engine(config, pool_size=2)
    try:
        if DEAD_LETTER in job.wanted.kinds:
            return _replay_dead_letters(config, job, engine)
        replayer = Replayer(config, engine)
        replayer.check(job)
        if UNCONFIRMED not in job.wanted.kinds or job.dry_run:
            return replayer.run(job, None)
        with service_relay(config, engine) as relay:
            return replayer.run(job, relay)
    finally:
        engine.dispose()


@frozen_heap
def backfill(
    config: ServiceConfig, job: BackfillJob, progress: Callable[[BackfillReport], None] | None = None
) -> BackfillReport:
    """One backfill with the service's database and producer."""
    engine = db_engine(config, pool_size=4)  # the guard, the relay lock, a claim and a settle connection
    try:
        if job.dry_run:
            return Backfiller(config, engine, None).run(job, progress)
        with service_relay(config, engine) as relay:
            return Backfiller(config, engine, relay).run(job, progress)
    finally:
        engine.dispose()


def audit(config: ServiceConfig, request: AuditRequest, max_listed: int | None = 100) -> AuditReport:
    """Read the service's topics back and compare them with its table. ``max_listed``: message ids listed
    per class (None: all)."""
    since, until = request.window_in(config)
    auditor = Auditor(config, max_listed)  # a configuration that cannot be audited says so first
    group = f"outbox-audit-{config.service}-{uuid.uuid4().hex[:8]}"  # assigned, never committed
    consumer = OutboxConsumerHook([], config.connections.kafka, group).get_conn
    engine = db_engine(config, pool_size=1)
    try:
        return auditor.run(engine, consumer, since, until)
    finally:
        consumer.close()
        engine.dispose()


def _consumer_engine(config: ServiceConfig) -> Engine:
    assert config.reconciliation is not None
    conn_id = config.reconciliation.connection or config.connections.db
    return OutboxDatabaseHook(conn_id).get_engine(config.db_time_zone, pool_size=1)


def reconcile(
    config: ServiceConfig, request: ReconcileRequest, interval: Window | None = None
) -> ReconciliationReport:
    """One reconciliation of the request's window (else ``interval``, a scheduled run's, else the last
    ``window_hours``)."""
    if config.reconciliation is None:
        raise MissingConfigurationError(
            f"service {config.service!r} has no 'reconciliation' section in its config"
        )
    since, until = request.window_in(config)
    if since is None and until is None and interval is not None:
        since, until = interval.start, interval.end
    engine = db_engine(config, pool_size=1)
    consumer = _consumer_engine(config) if config.reconciliation.connection else None
    try:
        return Reconciler(config, engine, consumer).run(
            since, until, request.redeliver, request.include_failed
        )
    finally:
        engine.dispose()
        if consumer is not None:
            consumer.dispose()


def explain(config: ServiceConfig, reference: str) -> Explanation | None:
    """Where one row stands and why; None when the table does not hold it."""
    return read_once(config, lambda conn: Explainer(config).explain(conn, reference))


def backlog(config: ServiceConfig) -> dict[str, Any]:
    """What waits in the service's table (``plan``)."""
    return read_once(config, OutboxStore(config).backlog)


def live_report(config: ServiceConfig) -> CheckReport:
    """The service's table, columns and index, and its topics, checked on the live database and broker."""
    report = CheckReport(config.service)
    try:
        read_once(config, lambda conn: check_database(conn, config, report))
    except Exception as exc:
        report.problems.append(f"database connection {config.connections.db!r} failed: {exc}")
    try:
        check_broker(admin_client(config.connections.kafka), config, report)
    except Exception as exc:
        report.problems.append(f"Kafka connection {config.connections.kafka!r} failed: {exc}")
    return report
