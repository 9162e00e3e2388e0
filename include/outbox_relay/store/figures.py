"""A service's backlog figures, each defined here once: rows per status, rows of a status counted up to a
bound (the backlog count), NEW rows given up on, and the ages of the oldest waiting rows. ``plan``
(``OutboxStore.backlog``), the health check after a run (and its gauges), the Outbox page and a
backfill's count of its window all read them from here.

Every statement reads one index range and is bounded, or is one step into an index: the figures must
stay cheap on a table with millions of waiting rows. Times are the database's.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.store.introspection import IndexHints
from outbox_relay.store.naming import ATTEMPT_TABLE
from outbox_relay.store.retry_state import RetryState
from outbox_relay.store.table import OutboxTable
from outbox_relay.store.watch import ready_now


class BacklogFigures:
    """One service's backlog figures (``OutboxStore.figures``)."""

    def __init__(self, table: OutboxTable, retry_state: RetryState, hints: IndexHints) -> None:
        self.table = table
        self.retry_state = retry_state
        self.hints = hints

    def by_status(self, conn: Connection, within: str = "1 = 1", **params: Any) -> dict[str, int]:
        """Rows per stored status (one pass over the (status, id) index); ``within``: only the rows this
        condition (with ``params``) selects, e.g. a backfill's window."""
        t = self.table
        sql = text(f"SELECT {t.status_col}, COUNT(*) FROM {t.name} WHERE {within}{t.row_filter} GROUP BY 1")
        return {str(s): int(n) for s, n in conn.execute(sql, self.table.params(**params))}

    def count(self, conn: Connection, status: Any, up_to: int) -> int:
        """Rows of ``status``, counted up to ``up_to`` (one bounded range of the (status, id) index): the
        backlog is ``count`` of the NEW status."""
        t = self.table
        sql = text(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {t.name} WHERE {t.status_eq('status', status)}{t.row_filter} "
            f"LIMIT {int(up_to)}) AS counted"
        )
        return int(conn.execute(sql, self.table.params(status=status)).scalar() or 0)

    def given_up_new(self, conn: Connection) -> int:
        """NEW rows given up on (tables whose failed status is null keep that in the attempt table)."""
        if self.table.statuses.failed is not None:
            return 0
        sql = text(
            f"SELECT COUNT(*) FROM {ATTEMPT_TABLE} WHERE service = :service AND source_table = :tbl "
            "AND failed = 1"
        )
        return int(conn.execute(sql, self.table.params()).scalar() or 0)

    def oldest_new_age_seconds(self, conn: Connection) -> int | None:
        """The oldest NEW age: seconds since the row the relay sends next was created, i.e. the first NEW
        row in claim order (the primary key, or ``order_by``) that neither waits for its retry time nor
        was given up on. None without a creation time or when no such row waits.

        This is the age an operator reads as "how long has the backlog waited" (the page's "next row to
        send has waited", the ``oldest_new_age_seconds`` gauge, ``slo.max_oldest_new_seconds``, ``plan``):
        rows waiting for a retry wait on purpose (their own backoff) and rows given up on wait for no one,
        so neither makes the relay look late. It is one step into the (status, claim order) index, where
        ``MIN(created_at)`` over NEW rows would read the whole backlog."""
        return self._first_age(conn, self.table.statuses.new, ready_now(self.retry_state))

    def oldest_unconfirmed_age_seconds(self, conn: Connection) -> int | None:
        """Seconds since the first SENT row in claim order was created (None: none, or no creation time)."""
        return self._first_age(conn, self.table.statuses.sent, "")

    def _first_age(self, conn: Connection, status: Any, condition: str) -> int | None:
        t = self.table
        created = t.as_datetime("created_at")
        if created is None:
            return None
        order = list(t.config.scan_index)
        hint = "" if t.config.row_filter or order == [t.columns.id] else (self.hints.hint(conn, order) or "")
        sql = text(
            f"SELECT TIMESTAMPDIFF(SECOND, {created}, NOW(6)) FROM {t.name} {hint} "
            f"WHERE {t.status_eq('status', status)}{t.row_filter}{condition} ORDER BY {t.order_sql} LIMIT 1"
        )
        value = conn.execute(sql, self.table.params(status=status)).scalar()
        return None if value is None else int(value)
