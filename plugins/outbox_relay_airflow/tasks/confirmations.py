"""The confirmations DAG's tasks: ingest the consumers' answers, then check the FAILED answers' SLO."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from outbox_relay.health import HealthCheck
from outbox_relay.metrics import confirmation_metrics
from outbox_relay.requests import ConfirmRequest
from outbox_relay_airflow import operations
from outbox_relay_airflow.services_folder import read_service
from outbox_relay_airflow.tasks.common import budgeted_run
from outbox_relay_airflow.tasks.failures import ServiceUnhealthyError, fail_without_retry


@fail_without_retry
def run_confirmations(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    return budgeted_run(
        service, context, services_dir, ConfirmRequest, operations.confirm, confirmation_metrics
    )


@fail_without_retry
def run_check_answers(
    service: str, context: dict[str, Any], services_dir: str | Path | None = None
) -> dict[str, Any]:
    """Fail the run when the consumers' FAILED answers of the last hour breach the SLO
    (``slo.max_failed_answer_share``, ``slo.max_failed_answers_per_hour``)."""
    config = read_service(service, services_dir)
    check = HealthCheck(config)
    figures = operations.read_once(config, check.answer_figures)
    problems = check.answer_problems(figures)
    if problems:
        raise ServiceUnhealthyError(" | ".join(problems))
    return {"healthy": True, "figures": figures}
