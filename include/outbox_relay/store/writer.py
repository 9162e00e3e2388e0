"""The INSERT a service runs to put messages into the standard outbox table (``outbox_relay.writer`` checks them first).

It runs on the caller's connection, inside the caller's transaction: the business rows and the outbox rows
commit or roll back together. Every other column takes its default (status NEW, created_at NOW(6), ...).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from outbox_relay.errors import MisuseError
from outbox_relay.store.naming import quote

WRITTEN_COLUMNS = ("message_id", "aggregate_id", "event_type", "topic", "payload", "headers")
# A row's not-before time, from a delay (relative to the database clock, so an application server's clock
# cannot skew it) or an instant in UTC (converted to the session time zone NOW(6) reads).
NOT_BEFORE_SQL = (
    "CASE WHEN {delay_us} IS NULL THEN CONVERT_TZ({not_before_utc}, '+00:00', @@session.time_zone) "
    "ELSE NOW(6) + INTERVAL {delay_us} MICROSECOND END"
)


def insert_outbox_rows(target: Any, table: str, rows: Sequence[Mapping[str, Any]]) -> None:
    """One INSERT of ``rows`` (dicts keyed by ``WRITTEN_COLUMNS``, plus ``delay_us`` and ``not_before_utc``
    when some row is scheduled) on ``target``: a SQLAlchemy ``Connection`` or ORM ``Session``, or a DB-API
    connection with pyformat parameters (PyMySQL, mysqlclient, MySQL Connector/Python). An ``Engine`` is
    refused: it would commit on its own connection, outside the transaction that writes the business rows.
    A scheduled row sets the standard table's next_attempt_at, which the relay reads as "not before"."""
    scheduled = any(r.get("delay_us") is not None or r.get("not_before_utc") is not None for r in rows)
    names = [*WRITTEN_COLUMNS, "next_attempt_at"] if scheduled else list(WRITTEN_COLUMNS)
    columns = ", ".join(quote(c) for c in names)
    if isinstance(target, (Connection, Session)):
        target.execute(text(_insert(table, columns, scheduled, ":{}".format)), [_params(r) for r in rows])
        return
    if isinstance(target, Engine) or not callable(getattr(target, "cursor", None)):
        raise MisuseError(
            f"write_outbox needs the connection (or Session) of the transaction that writes the business rows, "
            f"e.g. 'with engine.begin() as conn: ...; write_outbox(conn, ...)'; got {type(target).__name__}"
        )
    cursor = target.cursor()
    try:
        cursor.executemany(_insert(table, columns, scheduled, "%({})s".format), [_params(r) for r in rows])
    finally:
        cursor.close()


def _insert(table: str, columns: str, scheduled: bool, placeholder: Callable[[str], str]) -> str:
    values = [placeholder(c) for c in WRITTEN_COLUMNS]
    if scheduled:
        values.append(
            NOT_BEFORE_SQL.format(
                delay_us=placeholder("delay_us"), not_before_utc=placeholder("not_before_utc")
            )
        )
    return f"INSERT INTO {quote(table)} ({columns}) VALUES ({', '.join(values)})"


def _params(row: Mapping[str, Any]) -> dict[str, Any]:
    return {"delay_us": None, "not_before_utc": None, **row}
