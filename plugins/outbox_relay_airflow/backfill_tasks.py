"""Backfill from Airflow and the CLI: parameters -> a checked ``BackfillRequest``, and the run itself with
clients from Airflow connections. The backfill DAG's task calls these; so does ``outbox-relay backfill``."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from outbox_relay.backfill import DEFAULT_CHUNK_SECONDS, Backfiller, BackfillReport, BackfillRequest
from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.metrics import relay_metrics
from outbox_relay.models import Window
from outbox_relay.reconciliation import parse_time
from outbox_relay.relay.engine import OutboxRelay
from outbox_relay.replay import ReplayAudit
from outbox_relay_airflow.heap import frozen_heap
from outbox_relay_airflow.hooks import db_engine, service_publisher
from outbox_relay_airflow.observability import announce, send
from outbox_relay_airflow.services_folder import read_service
from outbox_relay_airflow.tasks import fail_without_retry

log = logging.getLogger(__name__)


def _time(params: dict[str, Any], name: str, config: ServiceConfig) -> Any:
    raw = params.get(name)
    if raw in (None, ""):
        raise ConfigurationError(f"backfill param {name!r} is required (an ISO date/time)")
    moment = parse_time(str(raw), f"param {name!r}")
    if moment.tzinfo is not None:
        moment = moment.astimezone(config.db_tzinfo).replace(tzinfo=None)
    return moment


def _number(params: dict[str, Any], name: str, default: float | None) -> float | None:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        return float(raw)
    except (TypeError, ValueError):
        raise ConfigurationError(f"backfill param {name!r}: {raw!r} is not a number") from None


def request_from_params(params: dict[str, Any], audit: ReplayAudit, config: ServiceConfig) -> BackfillRequest:
    """The backfill DAG's params (or the CLI's options, in the same shape) as a request; every bad value
    is named. Times with an offset are converted to the service's DB time zone, others are in it."""
    since, until = _time(params, "since", config), _time(params, "until", config)
    if since >= until:
        raise ConfigurationError(f"backfill params: since ({since}) must be before until ({until})")
    chunk = _number(params, "chunk_seconds", DEFAULT_CHUNK_SECONDS)
    return BackfillRequest(
        window=Window(since, until),
        audit=audit,
        republish=bool(params.get("republish")),
        chunk_seconds=DEFAULT_CHUNK_SECONDS if chunk is None else chunk,
        max_rows_per_second=_number(params, "max_rows_per_second", None),
        dry_run=bool(params.get("dry_run")),
    )


@frozen_heap
def backfill(
    config: ServiceConfig,
    request: BackfillRequest,
    progress: Callable[[BackfillReport], None] | None = None,
) -> BackfillReport:
    """Run one backfill with the service's database and producer."""
    engine = db_engine(config, pool_size=4)  # the guard, the relay lock, a claim and a settle connection
    try:
        relay = None if request.dry_run else OutboxRelay(config, engine, service_publisher(config))
        return Backfiller(config, engine, relay).run(request, progress)
    finally:
        engine.dispose()


def log_progress(report: BackfillReport) -> None:
    log.info(
        "backfill of %s, chunk %d: %d published, %d republished, %d held back so far (%.1fs)",
        report.service, report.chunks, report.published, report.republished, report.held_back,
        report.elapsed_seconds,
    )  # fmt: skip


@fail_without_retry
def run_backfill(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """The backfill DAG's task. A retried attempt resumes after the last row the run republished."""
    config = read_service(service, services_dir)
    params = dict(context.get("params") or {})
    user = getattr(context.get("dag_run"), "triggering_user_name", None) or "unknown"
    audit = ReplayAudit(str(user), str(params.get("reason") or ""), str(context.get("run_id") or "manual"))
    report = backfill(config, request_from_params(params, audit, config), log_progress)
    for line in report.lines():
        log.info("%s", line)
    result = report.as_dict()
    send(config.service, [m for m in relay_metrics(result) if m.kind == "counter"])
    result["asset_events"] = announce(config, context, result)
    return result
