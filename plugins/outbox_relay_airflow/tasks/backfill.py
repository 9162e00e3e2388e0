"""The backfill DAG's task: one run relays (and with republish sends again) a whole window, in chunks."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from outbox_relay.backfill import BackfillReport
from outbox_relay.metrics import relay_metrics
from outbox_relay.requests import BackfillRequest
from outbox_relay_airflow import operations
from outbox_relay_airflow.observability import announce, send
from outbox_relay_airflow.services_folder import read_service
from outbox_relay_airflow.tasks.common import history_entry
from outbox_relay_airflow.tasks.failures import fail_without_retry

log = logging.getLogger(__name__)


def log_progress(report: BackfillReport) -> None:
    log.info(
        "backfill of %s, chunk %d: %d published, %d republished, %d held back so far (%.1fs)",
        report.service,
        report.chunks,
        report.published,
        report.republished,
        report.held_back,
        report.elapsed_seconds,
    )


@fail_without_retry
def run_backfill(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """A retried attempt resumes after the last row the run republished."""
    config = read_service(service, services_dir)
    request = BackfillRequest.parse(context.get("params") or {})
    job = request.job(config, history_entry(context, request.reason))
    report = operations.backfill(config, job, log_progress)
    for line in report.lines():
        log.info("%s", line)
    result = report.as_dict()
    send(config.service, [m for m in relay_metrics(result) if m.kind == "counter"])
    result["asset_events"] = announce(config, context, result)
    return result
