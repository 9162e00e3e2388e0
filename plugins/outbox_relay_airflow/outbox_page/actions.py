"""The page's actions: requeue FAILED rows, republish unconfirmed ones, backfill a time window. The web
process never writes the outbox: it triggers a run of the service's replay (or backfill) DAG with the
chosen params, as the logged-in user, so every action is an Airflow run on record (a large replay waits
for an approval above the service's threshold)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from airflow.api.common.trigger_dag import trigger_dag
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.utils.types import DagRunTriggeredByType
from fastapi import HTTPException, Request, status

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.models import HistoryEntry
from outbox_relay.requests import BackfillRequest, ReplayRequest
from outbox_relay_airflow.dag_factory import service_dag_id


@dataclass(frozen=True)
class Action:
    """A page action: the DAG it triggers (``outbox_<service>_<kind>``) and the request model its params
    are checked with before any run exists (the DAG's own, so the messages are the same)."""

    kind: str
    request: type[ReplayRequest] | type[BackfillRequest]
    what: str  # what the reason is kept in

    @property
    def params(self) -> tuple[str, ...]:
        return tuple(self.request.param_fields())


ACTIONS = {
    "replay": Action("replay", ReplayRequest, "the row history"),
    "backfill": Action("backfill", BackfillRequest, "the row history, for republished rows"),
}


def check_may_trigger(user: Any, service: str, kind: str) -> None:
    dag_id = service_dag_id(service, kind)
    if not get_auth_manager().is_authorized_dag(
        method="POST", access_entity=DagAccessEntity.RUN, details=DagDetails(id=dag_id), user=user
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"no permission to trigger DAG {dag_id}")


def check_same_origin(request: Request) -> None:
    """A browser posting with Airflow's cookie must come from this site's own pages (no cross-site forms)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in {"same-origin", "none"}:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"cross-site request refused (Sec-Fetch-Site: {site})")
    origin = request.headers.get("origin")
    if origin and urlparse(origin).netloc != request.url.netloc:
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"cross-site request refused (Origin: {origin})")


def trigger(config: ServiceConfig, kind: str, params: dict[str, Any], user: Any) -> str:
    """Check the params as the DAG will (422 naming the bad one), then trigger its run as ``user``; the
    run id."""
    action = ACTIONS[kind]
    if kind == "backfill" and config.columns.created_at is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            f"service {config.service} has no backfill DAG: map columns.created_at to get one",
        )
    conf = {k: v for k, v in params.items() if k in action.params and v not in (None, "", [])}
    if not str(conf.get("reason") or "").strip():
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"a reason is required (kept in {action.what})"
        )
    try:
        action.request.parse(conf).job(config, HistoryEntry(user.get_name(), str(conf["reason"]), "check"))
    except ConfigurationError as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
    dag_id = service_dag_id(config.service, kind)
    run = trigger_dag(
        dag_id, triggered_by=DagRunTriggeredByType.UI, triggering_user_name=user.get_name(), conf=conf
    )
    if run is None:
        raise HTTPException(status.HTTP_409_CONFLICT, f"DAG {dag_id} started no run")
    return str(run.run_id)
