"""The reconciliation DAG's task: compare the outbox table with the consumers' table for a window."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from outbox_relay.config import ServiceConfig
from outbox_relay.models import Window
from outbox_relay.reconciliation import ReconciliationReport
from outbox_relay.requests import ReconcileRequest
from outbox_relay_airflow import operations
from outbox_relay_airflow.services_folder import read_service
from outbox_relay_airflow.tasks.common import BACKFILL_RUN_TYPES, data_interval
from outbox_relay_airflow.tasks.failures import ReconciliationDiscrepancyError, fail_without_retry

log = logging.getLogger(__name__)


CHECKED_INTERVALS = BACKFILL_RUN_TYPES | {"scheduled"}


def _interval(context: dict[str, Any], config: ServiceConfig) -> Window | None:
    """A scheduled (or backfill) run checks its data interval; a manual one the last ``window_hours``."""
    return data_interval(context, config, CHECKED_INTERVALS)


def _log(service: str, report: ReconciliationReport) -> None:
    log.info("%s", report.summary())
    log.info("service %s reconciliation: %s", service, {**report.counts, "checked": report.checked})
    for category, items in report.listed.items():
        for item in items:
            log.warning("%s: %s", category, item)


@fail_without_retry
def run_reconciliation(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """Params since/until, else a scheduled run's data interval, else the last ``window_hours``. Missing
    messages fail the task (``on_discrepancy: fail``) unless re-delivered."""
    config = read_service(service, services_dir)
    request = ReconcileRequest.parse(context.get("params") or {})
    report = operations.reconcile(config, request, _interval(context, config))
    _log(service, report)
    assert config.reconciliation is not None
    if report.missing and not request.redeliver:
        message = (
            f"{report.summary()}. Re-deliver with: outbox-relay reconcile {service} "
            f"--since '{report.since}' --until '{report.until}' --redeliver (or trigger with redeliver=true)"
        )
        if config.reconciliation.on_discrepancy == "fail":
            raise ReconciliationDiscrepancyError(message)
        log.warning("%s", message)
    result = report.as_dict()  # XCom keeps the first ids of each category; the log lists all of them
    result["listed"] = {category: items[:20] for category, items in report.listed.items()}
    return result
