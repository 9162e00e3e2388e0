"""The replay DAG's tasks: plan (a dry run a person can approve), then the replay itself."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from outbox_relay.models import HistoryEntry
from outbox_relay.requests import ReplayRequest
from outbox_relay_airflow import operations
from outbox_relay_airflow.approval import approval_text
from outbox_relay_airflow.services_folder import read_service
from outbox_relay_airflow.tasks.common import history_entry
from outbox_relay_airflow.tasks.failures import fail_without_retry

log = logging.getLogger(__name__)


def _history(context: dict[str, Any], params: dict[str, Any]) -> HistoryEntry:
    return history_entry(
        context, str(params.get("reason") or ""), str(params.get("requested_by") or "unknown")
    )


@fail_without_retry
def run_replay_plan(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """What the params select (a dry run), so that a person can approve it."""
    config = read_service(service, services_dir)
    params = dict(context.get("params") or {})
    history = _history(context, params)
    request = ReplayRequest.parse({**params, "dry_run": True})
    report = operations.replay(config, request.job(config, history))
    for line in report.lines():
        log.info("%s", line)
    plan = report.as_dict()
    return {**plan, "approval": approval_text(config, params, plan, history.requested_by)}


@fail_without_retry
def run_replay(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """Requeue / republish (nothing when the run's dry_run param is set)."""
    config = read_service(service, services_dir)
    params = dict(context.get("params") or {})
    request = ReplayRequest.parse(params)
    report = operations.replay(config, request.job(config, _history(context, params)))
    for line in report.lines():
        log.info("%s", line)
    return report.as_dict()
