"""Session locks on a table: one relay at a time, one backfill at a time. MySQL session locks die with
the connection of their holder, so a crashed or killed holder never leaves one behind."""

from __future__ import annotations

import math

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from outbox_relay.store.table import OutboxTable

# GET_LOCK names are at most 64 characters; the database name keeps two schemas' tables apart.
_LOCK_NAME = "LEFT(CONCAT(:purpose, ':', DATABASE(), ':', :tbl), 64)"


class TableLock:
    """A named session lock on one table (of one row filter)."""

    def __init__(self, table: OutboxTable, purpose: str) -> None:
        self._params = {"tbl": table.lock_key, "purpose": purpose}

    def acquire(self, conn: Connection, wait_seconds: float) -> bool:
        """Wait up to ``wait_seconds`` for the lock. MySQL truncates a fractional wait (0.5 s would not
        wait at all), so there it is rounded up to whole seconds; MariaDB waits fractions."""
        wait = wait_seconds if getattr(conn.dialect, "is_mariadb", False) else math.ceil(wait_seconds)
        sql = text(f"SELECT GET_LOCK({_LOCK_NAME}, :wait)")
        got = conn.execute(sql, {**self._params, "wait": wait}).scalar()
        conn.commit()
        return bool(got)

    def holder(self, conn: Connection) -> int | None:
        """The connection id (``SHOW PROCESSLIST`` / ``KILL``) of the session holding the lock, or None."""
        held = conn.execute(text(f"SELECT IS_USED_LOCK({_LOCK_NAME})"), self._params).scalar()
        conn.commit()
        return None if held is None else int(held)

    def release(self, conn: Connection) -> None:
        """Release the lock; if the connection is broken, discard it (the server drops the lock with it)."""
        try:
            conn.rollback()
            conn.execute(text(f"DO RELEASE_LOCK({_LOCK_NAME})"), self._params)
            conn.commit()
        except SQLAlchemyError:
            conn.invalidate()


def relay_lock(table: OutboxTable) -> TableLock:
    """Relays of one table take turns: per-key order then holds even when a backfill and a scheduled run
    overlap."""
    return TableLock(table, "outbox-relay")


def backfill_lock(table: OutboxTable) -> TableLock:
    """Held by a backfill for its whole run (it lets go of the relay lock between chunks): a second backfill
    of the table is refused, and a scheduled relay that finds the relay lock busy knows why."""
    return TableLock(table, "outbox-backfill")
