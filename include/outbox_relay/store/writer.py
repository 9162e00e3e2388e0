"""The INSERT a service runs to put messages into the standard outbox table (``outbox-relay ddl`` prints it).

It runs on the caller's connection, inside the caller's transaction: the business rows and the outbox rows
commit or roll back together. Every other column takes its default (status NEW, created_at NOW(6), ...).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from outbox_relay.store.naming import quote

WRITTEN_COLUMNS = ("message_id", "aggregate_id", "event_type", "topic", "payload", "headers")


def insert_outbox_rows(target: Any, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """One multi-row INSERT of ``rows`` (dicts keyed by ``WRITTEN_COLUMNS``) on ``target``: a SQLAlchemy
    ``Connection`` or ORM ``Session``, or a DB-API connection with pyformat parameters (PyMySQL,
    mysqlclient, MySQL Connector/Python). An ``Engine`` is refused: it would commit on its own connection,
    outside the transaction that writes the business rows."""
    columns = ", ".join(quote(c) for c in WRITTEN_COLUMNS)
    if isinstance(target, (Connection, Session)):
        values = ", ".join(f":{c}" for c in WRITTEN_COLUMNS)
        target.execute(text(f"INSERT INTO {quote(table)} ({columns}) VALUES ({values})"), list(rows))
        return
    if isinstance(target, Engine) or not callable(getattr(target, "cursor", None)):
        raise TypeError(
            f"write_outbox needs the connection (or Session) of the transaction that writes the business rows, "
            f"e.g. 'with engine.begin() as conn: ...; write_outbox(conn, ...)'; got {type(target).__name__}"
        )
    values = ", ".join(f"%({c})s" for c in WRITTEN_COLUMNS)
    cursor = target.cursor()
    try:
        cursor.executemany(f"INSERT INTO {quote(table)} ({columns}) VALUES ({values})", list(rows))
    finally:
        cursor.close()
