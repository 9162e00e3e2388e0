"""Replay from Airflow and the CLI: parameters -> a checked ``ReplayRequest``, and the run itself with
clients from Airflow connections. The replay DAG's tasks call these; so does ``outbox-relay replay``."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.reconciliation import parse_time
from outbox_relay.relay.engine import OutboxRelay
from outbox_relay.replay import (
    DEAD_LETTER,
    FAILED,
    UNCONFIRMED,
    DeadLetterReplayer,
    ReplayAudit,
    Replayer,
    ReplayFilter,
    ReplayReport,
    ReplayRequest,
)
from outbox_relay_airflow.approval import approval_text
from outbox_relay_airflow.heap import frozen_heap
from outbox_relay_airflow.hooks import OutboxConsumerHook, db_engine, service_publisher
from outbox_relay_airflow.services_folder import read_service
from outbox_relay_airflow.tasks import fail_without_retry

log = logging.getLogger(__name__)

# Defaults of the replay DAG's params (and the CLI's options).
DEFAULT_MAX_ROWS = 1000
DEFAULT_APPROVAL_ABOVE = 100


def _words(value: Any) -> tuple[str, ...]:
    """A param given as a list, or as one string of comma/space/newline separated items."""
    items: Iterable[Any] = (
        value if isinstance(value, list | tuple) else str(value or "").replace(",", " ").split()
    )
    return tuple(str(i).strip() for i in items if str(i).strip())


def request_from_params(params: dict[str, Any], audit: ReplayAudit, config: ServiceConfig) -> ReplayRequest:
    """The replay DAG's params (or the CLI's options, in the same shape) as a request; every bad value
    is named. Times with an offset are converted to the service's DB time zone."""
    kinds = frozenset(_words(params.get("statuses") or [FAILED]))
    unknown = kinds - {FAILED, UNCONFIRMED, DEAD_LETTER}
    if unknown:
        raise ConfigurationError(
            f"replay param 'statuses': {sorted(unknown)} not among {FAILED!r}, {UNCONFIRMED!r}, {DEAD_LETTER!r}"
        )
    if DEAD_LETTER in kinds and len(kinds) > 1:
        raise ConfigurationError(
            f"replay param 'statuses': {DEAD_LETTER!r} reads the dead-letter topic, the others the table; "
            "replay them in separate runs"
        )
    times = {}
    for name in ("created_from", "created_until"):
        raw = params.get(name)
        moment = None if raw in (None, "") else parse_time(str(raw), f"param {name!r}")
        if moment is not None and moment.tzinfo is not None:
            moment = moment.astimezone(config.db_tzinfo).replace(tzinfo=None)
        times[name] = moment
    if times["created_from"] and times["created_until"] and times["created_from"] >= times["created_until"]:
        raise ConfigurationError("replay params: created_from must be before created_until")
    try:
        raw_max = params.get("max_rows")
        max_rows = DEFAULT_MAX_ROWS if raw_max in (None, "") else int(raw_max)
    except (TypeError, ValueError):
        raise ConfigurationError(
            f"replay param 'max_rows': {params.get('max_rows')!r} is not a number"
        ) from None
    wanted = ReplayFilter(
        kinds=kinds,
        row_ids=_words(params.get("row_ids")),
        message_ids=_words(params.get("message_ids")),
        key=params.get("key") or None,
        event_type=params.get("event_type") or None,
        created_from=times["created_from"],
        created_until=times["created_until"],
    )
    return ReplayRequest(wanted, audit, max_rows, bool(params.get("dry_run")))


def _replay_dead_letters(config: ServiceConfig, request: ReplayRequest, engine: Any) -> ReplayReport:
    group = f"outbox-replay-{config.service}-{uuid.uuid4().hex[:8]}"  # assigned, never committed
    consumer = OutboxConsumerHook([], config.connections.kafka, group).get_conn
    try:
        publisher = None if request.dry_run else service_publisher(config)
        return DeadLetterReplayer(config, engine).run(request, consumer, publisher)
    finally:
        consumer.close()


@frozen_heap
def replay(config: ServiceConfig, request: ReplayRequest) -> ReplayReport:
    """Run one replay with the service's database and (for SENT rows and dead letters) its producer."""
    engine = db_engine(config, pool_size=2)
    try:
        if DEAD_LETTER in request.wanted.kinds:
            return _replay_dead_letters(config, request, engine)
        replayer = Replayer(config, engine)
        replayer.check(request)
        relay = None
        if UNCONFIRMED in request.wanted.kinds and not request.dry_run:
            relay = OutboxRelay(config, engine, service_publisher(config))
        return replayer.run(request, relay)
    finally:
        engine.dispose()


def _audit_from(context: dict[str, Any], params: dict[str, Any]) -> ReplayAudit:
    run = context.get("dag_run")
    user = getattr(run, "triggering_user_name", None) or params.get("requested_by") or "unknown"
    return ReplayAudit(str(user), str(params.get("reason") or ""), str(context.get("run_id") or "manual"))


@fail_without_retry
def run_replay_plan(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """The replay DAG's first task: what the params select (a dry run), so that a human can approve it."""
    config = read_service(service, services_dir)
    params = dict(context.get("params") or {})
    audit = _audit_from(context, params)
    request = request_from_params({**params, "dry_run": True}, audit, config)
    report = replay(config, request)
    for line in report.lines():
        log.info("%s", line)
    plan = report.as_dict()
    return {**plan, "approval": approval_text(config, params, plan, audit.requested_by)}


@fail_without_retry
def run_replay(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """The replay DAG's last task: requeue / republish (nothing when the run's dry_run param is set)."""
    config = read_service(service, services_dir)
    params = dict(context.get("params") or {})
    report = replay(config, request_from_params(params, _audit_from(context, params), config))
    for line in report.lines():
        log.info("%s", line)
    return report.as_dict()
