"""The last hour of a service, per minute, for the Outbox page's chart: rows given up on (or answered
FAILED), and what the backlog was at each minute, worked out from the rows themselves.

A row was part of the backlog at minute m when it was created by m and had not left it at m (sent, or
given up on): the rows still pending now, plus the rows that left in the last hour. The reads are
bounded: the pending rows up to ``PENDING_COUNTED`` (one range of the (status, id) index), the rows that
left through (status, updated_at).
Minutes are 'YYYY-MM-DD HH:MM' strings on the database clock (they sort as times).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.models import BacklogRows
from outbox_relay.store.dashboard import DashboardQueries
from outbox_relay.store.naming import ATTEMPT_TABLE, expanding

MINUTE = "%Y-%m-%d %H:%i"  # MySQL's DATE_FORMAT of Python's "%Y-%m-%d %H:%M"
PENDING_COUNTED = 100_000


class ActivityQueries:
    def __init__(self, queries: DashboardQueries) -> None:
        self.queries = queries
        self.table = queries.table

    def hour(self, conn: Connection) -> list[str]:
        """The last hour's 60 minutes on the database clock, oldest first (the current minute last)."""
        now: datetime = conn.execute(text("SELECT NOW()")).scalar_one()
        last = now.replace(second=0, microsecond=0)
        return [(last - timedelta(minutes=59 - i)).strftime("%Y-%m-%d %H:%M") for i in range(60)]

    def failed_per_minute(self, conn: Connection) -> dict[str, int] | None:
        """Rows that became FAILED per minute (given up on, or answered FAILED), by their update time;
        where FAILED rows keep the NEW status, the attempt table's give-ups. None when not countable."""
        t = self.table
        if t.statuses.failed is not None:
            return self.queries.per_minute(conn, "updated_at", [t.statuses.failed])
        sql = text(
            f"SELECT DATE_FORMAT(updated_at, '{MINUTE}') AS minute, COUNT(*) FROM {ATTEMPT_TABLE} "
            "WHERE service = :service AND source_table = :tbl AND failed = 1 "
            "AND updated_at >= NOW(6) - INTERVAL 1 HOUR GROUP BY minute"
        )
        return {str(m): int(n) for m, n in conn.execute(sql, t.attempt_params)}

    def backlog_rows(self, conn: Connection, first_minute: str) -> BacklogRows | None:
        """The rows the backlog line is computed from; None without a creation time."""
        t = self.table
        created = t.as_datetime("created_at")
        if created is None:
            return None
        params: dict[str, Any] = {**t.filter_params, "new": t.statuses.new, "cap": PENDING_COUNTED}
        pending_sql = text(
            f"SELECT DATE_FORMAT(c, '{MINUTE}') AS minute, COUNT(*) FROM (SELECT {created} AS c FROM {t.name} "
            f"WHERE {t.status_eq('new', t.statuses.new)}{t.row_filter} LIMIT :cap) AS pending GROUP BY minute"
        )
        pending: dict[str, int] = {}
        for minute, n in conn.execute(pending_sql, params):
            key = max(str(minute), first_minute)
            pending[key] = pending.get(key, 0) + int(n)
        left = self._left_in_the_hour(conn, created, first_minute)
        return BacklogRows(pending, left or {}, sum(pending.values()) >= PENDING_COUNTED, left is not None)

    def _left_in_the_hour(
        self, conn: Connection, created: str, first_minute: str
    ) -> dict[tuple[str, str], int] | None:
        """(creation minute, minute it left the backlog) -> rows: sent rows by their send time, FAILED rows
        that were never sent by the time they failed (their update time)."""
        t = self.table
        sent_at, updated = t.column("sent_at"), t.column("updated_at")
        hint = (
            None
            if sent_at is None or updated is None
            else self.queries.index_hint(conn, "status", "updated_at")
        )
        if hint is None:
            return None
        st = t.statuses
        statuses = [s for s in (st.sent, st.confirmed, st.failed) if s is not None]
        since = f"{updated} >= NOW(6) - INTERVAL 1 HOUR"
        sql = expanding(
            f"SELECT DATE_FORMAT({created}, '{MINUTE}'), DATE_FORMAT({sent_at}, '{MINUTE}'), COUNT(*) "
            f"FROM {t.name} {hint} WHERE {t.status_in('statuses', statuses)}{t.row_filter} "
            f"AND {since} AND {sent_at} >= NOW(6) - INTERVAL 1 HOUR GROUP BY 1, 2",
            "statuses",
        )
        params = {**t.filter_params, "statuses": statuses, "failed": st.failed}
        records = list(conn.execute(sql, params))
        if st.failed is not None:
            sql = text(
                f"SELECT DATE_FORMAT({created}, '{MINUTE}'), DATE_FORMAT({updated}, '{MINUTE}'), COUNT(*) "
                f"FROM {t.name} {hint} WHERE {t.status_eq('failed', st.failed)}{t.row_filter} "
                f"AND {since} AND {sent_at} IS NULL GROUP BY 1, 2"
            )
            records += list(conn.execute(sql, params))
        found: dict[tuple[str, str], int] = {}
        for c, left, n in records:
            key = (max(str(c), first_minute), str(left))
            found[key] = found.get(key, 0) + int(n)
        return found
