"""The one cheap question an event-driven relay asks between runs: which row of this service would the
relay claim first now, if any? One indexed probe (``LIMIT 1`` on the claim's scan index), however big
the table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, text

from outbox_relay.store.retry_state import RetryState
from outbox_relay.store.table import OutboxTable


def ready_now(retry_state: RetryState) -> str:
    """A WHERE fragment for NEW rows the relay would send now: not given up on and not waiting for their
    retry time (needs ``attempt_params``)."""
    return f"{retry_state.not_given_up} AND NOT COALESCE(({retry_state.waiting_condition}), FALSE)"


class WatchQuery:
    def __init__(self, table: OutboxTable, retry_state: RetryState) -> None:
        t = table
        where = f"{t.status_eq('new', t.statuses.new)}{t.row_filter}{ready_now(retry_state)}"
        if t.column("created_at") and t.config.threshold_seconds > 0:
            where += f" AND {t.created('<=', 'NOW(6) - INTERVAL :threshold_us MICROSECOND')}"
        self._sql = text(f"SELECT {t.id_col} FROM {t.name} WHERE {where} ORDER BY {t.order_sql} LIMIT 1")
        self._params = {
            "new": t.statuses.new,
            "threshold_us": int(t.config.threshold_seconds * 1_000_000),
            **t.attempt_params,
            **t.filter_params,
        }
        self._compiled: tuple[str, Any] | None = None  # the statement and parameters in the driver's form

    def look(self, engine: Engine) -> Any:
        """The primary key of the next row the relay would claim now (not waiting for its retry time, not
        given up on), or None: one step into the claim's scan index. On an engine made with ``watching``
        (autocommit, no ping) it is the one statement the server sees: a pooled DBAPI connection, the
        query compiled once. A connection the server dropped (a restart, ``wait_timeout``) is replaced
        and asked again, once."""
        return self._ask(engine, again=True)

    def _ask(self, engine: Engine, again: bool) -> Any:
        if self._compiled is None:
            compiled = self._sql.compile(dialect=engine.dialect)
            self._compiled = (compiled.string, compiled.construct_params(self._params))
        conn = engine.raw_connection()
        try:
            cursor = conn.cursor()
            try:
                cursor.execute(*self._compiled)
                found = cursor.fetchone()
            finally:
                cursor.close()
        except engine.dialect.loaded_dbapi.Error as exc:
            if not engine.dialect.is_disconnect(exc, conn.dbapi_connection, None):
                raise
            conn.invalidate(exc)
            if not again:
                raise
        else:
            return None if found is None else found[0]
        finally:
            conn.close()
        return self._ask(engine, again=False)
