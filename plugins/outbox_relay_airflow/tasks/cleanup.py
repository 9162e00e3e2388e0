"""The cleanup DAG's task: retention of the service's old terminal rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from outbox_relay.metrics import cleanup_metrics
from outbox_relay.requests import CleanupRequest
from outbox_relay_airflow import operations
from outbox_relay_airflow.observability import send
from outbox_relay_airflow.services_folder import read_service
from outbox_relay_airflow.tasks.failures import fail_without_retry


@fail_without_retry
def run_cleanup(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    config = read_service(service, services_dir)
    request = CleanupRequest.parse(context.get("params") or {})
    stats = operations.cleanup(config, request.time_budget_seconds)
    if "skipped" not in stats:
        send(config.service, cleanup_metrics(stats))
    return stats
