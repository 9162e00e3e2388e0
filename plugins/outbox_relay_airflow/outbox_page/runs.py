"""The latest runs of a service's DAGs, read from Airflow's metadata database (the page runs inside the
api-server, which owns it)."""

from __future__ import annotations

from typing import Any

from airflow.models.dagrun import DagRun
from airflow.models.taskinstance import TaskInstance
from airflow.utils.session import create_session

from outbox_relay_airflow.dag_factory import service_dag_id

KINDS = ("relay", "confirmations", "cleanup", "backfill", "replay")
ENDED = frozenset({"success", "failed"})
# A task in one of these states waits for something outside the run, said in words on the page.
WAITING = {
    "deferred": "waiting: for an approval in Required Actions, or for its trigger",
    "up_for_retry": "failed once, retried by Airflow",
    "up_for_reschedule": "waiting to be rescheduled",
}


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


def run_state(service: str, kind: str, run_id: str) -> dict[str, Any] | None:
    """One run of a service's DAG: its state, whether it ended, and each task's state (what a page that
    triggered it polls until it ends); None when there is no such run."""
    dag_id = service_dag_id(service, kind)
    with create_session() as session:
        run = session.query(DagRun).filter(DagRun.dag_id == dag_id, DagRun.run_id == run_id).one_or_none()
        if run is None:
            return None
        tasks = (
            session.query(TaskInstance.task_id, TaskInstance.map_index, TaskInstance.state)
            .filter(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
            .order_by(TaskInstance.start_date.is_(None), TaskInstance.start_date, TaskInstance.task_id)
            .all()
        )
        state = str(run.state)
        return {
            "dag_id": dag_id,
            "run_id": run_id,
            "state": state,
            "ended": state in ENDED,
            "start_date": run.start_date,
            "end_date": run.end_date,
            "link": f"/dags/{dag_id}/runs/{run_id}",
            "tasks": [
                {
                    "task_id": t.task_id if t.map_index < 0 else f"{t.task_id}[{t.map_index}]",
                    "state": str(t.state) if t.state else "none",
                    "note": WAITING.get(str(t.state), ""),
                }
                for t in tasks
            ],
        }
