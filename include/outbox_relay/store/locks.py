"""One relay per table at a time: a MySQL session lock, so it dies with the connection of its holder."""

from __future__ import annotations

from sqlalchemy import Connection, text
from sqlalchemy.exc import SQLAlchemyError

from outbox_relay.store.table import OutboxTable

# GET_LOCK names are at most 64 characters; the database name keeps two schemas' tables apart.
_LOCK_NAME = "LEFT(CONCAT('outbox-relay:', DATABASE(), ':', :tbl), 64)"


class RelayLock:
    """Relays of one table (of one row filter) take turns: per-key order then holds even when a backfill
    and a scheduled run overlap."""

    def __init__(self, table: OutboxTable) -> None:
        self._params = {"tbl": table.lock_key}

    def acquire(self, conn: Connection, wait_seconds: float) -> bool:
        sql = text(f"SELECT GET_LOCK({_LOCK_NAME}, :wait)")
        got = conn.execute(sql, {**self._params, "wait": wait_seconds}).scalar()
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
