"""Who may see what: every route needs an authenticated Airflow user (Airflow's own auth manager, by JWT
cookie or bearer token); a service's pages need read access to its relay DAG, its actions edit access."""

from __future__ import annotations

from typing import Annotated, Any

from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.base_auth_manager import ResourceMethod
from airflow.api_fastapi.auth.managers.models.resource_details import DagDetails
from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, HTTPException, status

from outbox_relay_airflow.dag_factory import service_dag_id


def relay_dag_id(service: str) -> str:
    return service_dag_id(service, "relay")


def may(user: Any, method: ResourceMethod, service: str) -> bool:
    """``GET``: read the service's DAGs; ``PUT``: act on them (trigger runs)."""
    details = DagDetails(id=relay_dag_id(service))
    return bool(get_auth_manager().is_authorized_dag(method=method, details=details, user=user))


def readable_service(service: str, user: GetUserDep) -> str:
    """The path's service, if the user may read its DAGs (403 otherwise; 401 came before, without a user)."""
    if not may(user, "GET", service):
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"no read access to DAG {relay_dag_id(service)}")
    return service


ReadableService = Annotated[str, Depends(readable_service)]
