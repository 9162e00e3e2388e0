"""Where the glue finds an Airflow connection: the same place Airflow itself would, wherever it runs.

In a task or the triggerer the Task SDK looks it up (environment, the configured secrets backend, then the
API server). Outside them, in the ``outbox-relay`` command and the Outbox page (the api-server), the Task SDK
does not read the metadata database, so a connection stored with ``airflow connections add`` or the UI
would not be found. There the lookup is Airflow core's, the one ``airflow connections get`` makes:
environment, secrets backend, then the metadata database of ``AIRFLOW_HOME``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow.sdk import Connection

_lookup_outside_tasks = False


def look_up_like_airflow_cli() -> None:
    """Called by the CLI and the page (processes that never run a task) before they open a connection;
    imports nothing (the CLI imports Airflow only once its arguments are good)."""
    global _lookup_outside_tasks
    _lookup_outside_tasks = True


def _not_found(conn_id: str) -> str:
    import os

    from airflow.configuration import conf

    home = os.environ.get("AIRFLOW_HOME", "~/airflow (AIRFLOW_HOME is not set)")
    database = conf.get("database", "sql_alchemy_conn").split("://", 1)[0]
    return (
        f"Airflow connection {conn_id!r} not found: not in ${'AIRFLOW_CONN_' + conn_id.upper()}, the secrets "
        f"backend, nor the metadata database ({database}) of AIRFLOW_HOME={home}; add it with `airflow "
        "connections add`, or point AIRFLOW_HOME at the Airflow that has it"
    )


def get_connection(conn_id: str) -> Connection:
    """The connection ``conn_id``; raises Airflow's ``AirflowNotFoundException`` naming it when no source
    has it."""
    from airflow.sdk import BaseHook

    if not _lookup_outside_tasks:
        return BaseHook.get_connection(conn_id)
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined,unused-ignore]
    from airflow.models.connection import Connection as StoredConnection

    try:
        found = StoredConnection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        raise AirflowNotFoundException(_not_found(conn_id)) from None
    return copy_of(found, found.extra)


def copy_of(source: Any, extra: str | None) -> Connection:
    """A Task SDK connection with ``source``'s fields (Airflow core's connection or the SDK's) and ``extra``."""
    from airflow.sdk import Connection

    return Connection(
        conn_id=source.conn_id,
        conn_type=source.conn_type or "",
        description=source.description,
        host=source.host,
        schema=source.schema,
        login=source.login,
        password=source.password,
        port=source.port,
        extra=extra,
    )
