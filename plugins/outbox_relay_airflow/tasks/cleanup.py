"""The cleanup DAG's task: retention of the service's old terminal rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from outbox_relay.metrics import cleanup_metrics
from outbox_relay.requests import CleanupRequest
from outbox_relay_airflow import operations
from outbox_relay_airflow.tasks.common import budgeted_run
from outbox_relay_airflow.tasks.failures import fail_without_retry


@fail_without_retry
def run_cleanup(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    return budgeted_run(service, context, services_dir, CleanupRequest, operations.cleanup, cleanup_metrics)
