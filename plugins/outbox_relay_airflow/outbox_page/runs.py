"""The latest runs of a service's DAGs, read from Airflow's metadata database (the page runs inside the
api-server, which owns it)."""

from __future__ import annotations

from typing import Any

from airflow.models.dagrun import DagRun
from airflow.utils.session import create_session

from outbox_relay_airflow.dag_factory import service_dag_id

KINDS = ("relay", "confirmations", "cleanup", "backfill", "replay")


def latest_runs(service: str, per_dag: int = 3) -> dict[str, list[dict[str, Any]]]:
    """Per DAG kind, its newest runs: id, state, type, start and end, and the link to it in the UI."""
    found: dict[str, list[dict[str, Any]]] = {}
    with create_session() as session:
        for kind in KINDS:
            dag_id = service_dag_id(service, kind)
            runs = (  # Airflow's ORM on Airflow's own database: no outbox SQL here
                session.query(DagRun)
                .filter(DagRun.dag_id == dag_id)
                .order_by(DagRun.id.desc())
                .limit(per_dag)
                .all()
            )
            found[kind] = [
                {
                    "dag_id": dag_id,
                    "run_id": r.run_id,
                    "state": str(r.state),
                    "run_type": str(r.run_type),
                    "start_date": r.start_date,
                    "end_date": r.end_date,
                    "link": f"/dags/{dag_id}/runs/{r.run_id}",
                }
                for r in runs
            ]
    return found
