"""What the task bodies share: reading the run's context, and a job bounded by a time budget."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from outbox_relay.config import ServiceConfig
from outbox_relay.metrics import Metric
from outbox_relay.models import HistoryEntry, Window
from outbox_relay.requests import CleanupRequest, ConfirmRequest
from outbox_relay.times import to_db_time
from outbox_relay_airflow.observability import send
from outbox_relay_airflow.services_folder import read_service


def run_type(context: dict[str, Any]) -> str:
    """The DAG run's type as a plain lower-case word (``scheduled``, ``manual``, ``backfill``, ...)."""
    return str(getattr(context.get("dag_run"), "run_type", "") or "").lower().split(".")[-1]


BACKFILL_RUN_TYPES = frozenset({"backfill", "backfill_job"})


def data_interval(context: dict[str, Any], config: ServiceConfig, run_types: frozenset[str]) -> Window | None:
    """The run's data interval in the service's DB time, for runs of ``run_types`` that have one (None for
    the others, and for an empty interval)."""
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    if run_type(context) not in run_types or start is None or end is None or start >= end:
        return None
    return Window(to_db_time(start, config.db_tzinfo), to_db_time(end, config.db_tzinfo))


def requested_by(context: dict[str, Any], default: str = "unknown") -> str:
    return str(getattr(context.get("dag_run"), "triggering_user_name", None) or default)


def history_entry(context: dict[str, Any], reason: str, default_user: str = "unknown") -> HistoryEntry:
    """Who a run acts for and why, as the row history records it (the run id is the run's)."""
    return HistoryEntry(requested_by(context, default_user), reason, str(context.get("run_id") or "manual"))


def budgeted_run(
    service: str,
    context: dict[str, Any],
    services_dir: str | Path | None,
    request: type[ConfirmRequest] | type[CleanupRequest],
    job: Callable[[ServiceConfig, float | None], dict[str, Any]],
    metrics: Callable[[dict[str, Any]], list[Metric]],
) -> dict[str, Any]:
    """One run of a job bounded by the run's ``time_budget_seconds`` (else the service's); its statistics
    become metrics unless the service has no such job."""
    config = read_service(service, services_dir)
    stats = job(config, request.parse(context.get("params") or {}).time_budget_seconds)
    if "skipped" not in stats:
        send(config.service, metrics(stats))
    return stats
