"""The page's actions: requeue FAILED rows, republish unconfirmed ones. The web process never writes the
outbox: it triggers a run of the service's replay DAG with the chosen params, as the logged-in user, so
every action is an Airflow run on record (and waits for an approval above the service's threshold)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from airflow.api.common.trigger_dag import trigger_dag
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.utils.types import DagRunTriggeredByType
from fastapi import HTTPException, Request, status

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.replay import ReplayAudit
from outbox_relay_airflow.replay_tasks import request_from_params

PARAMS = ("statuses", "row_ids", "message_ids", "key", "event_type", "created_from", "created_until",
          "max_rows", "dry_run", "reason")  # fmt: skip


def replay_dag_id(service: str) -> str:
    return f"outbox_{service}_replay"


def check_may_trigger(user: Any, service: str) -> None:
    details = DagDetails(id=replay_dag_id(service))
    if not get_auth_manager().is_authorized_dag(
        method="POST", access_entity=DagAccessEntity.RUN, details=details, user=user
    ):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, f"no permission to trigger DAG {replay_dag_id(service)}"
        )


def check_same_origin(request: Request) -> None:
    """A browser posting with Airflow's cookie must come from this site's own pages (no cross-site forms)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in {"same-origin", "none"}:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    if origin and urlparse(origin).netloc != request.url.netloc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"cross-site request refused (Origin: {origin})")


def trigger_replay(config: ServiceConfig, params: dict[str, Any], user: Any) -> str:
    """Check the params as the replay DAG will (422 naming the bad one), then trigger its run; the run id."""
    conf = {k: v for k, v in params.items() if k in PARAMS and v not in (None, "", [])}
    try:
        request_from_params(
            conf, ReplayAudit(user.get_name(), str(conf.get("reason") or ""), "check"), config
        )
    except ConfigurationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    if not str(conf.get("reason") or "").strip():
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, "a reason is required (kept in the replay history)"
        )
    run = trigger_dag(
        replay_dag_id(config.service),
        triggered_by=DagRunTriggeredByType.UI,
        triggering_user_name=user.get_name(),
        conf=conf,
    )
    if run is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"DAG {replay_dag_id(config.service)} started no run")
    return str(run.run_id)
