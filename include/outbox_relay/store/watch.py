"""The one cheap question an event-driven relay asks between runs: which row of this service would the
relay claim first now, if any? One indexed probe (``LIMIT 1`` on the claim's scan index), however big
the table."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

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

    def first_eligible(self, conn: Connection) -> Any:
        """The primary key of the next row the relay would claim now (not waiting for its retry time, not
        given up on), or None: one step into the claim's scan index."""
        found = conn.execute(self._sql, self._params).first()
        conn.rollback()
        return None if found is None else found[0]
