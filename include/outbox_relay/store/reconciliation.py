"""Reconciliation's SQL: the outbox scan of a time window, the consumers' records, repairs, and the
consumers' table retention. The comparison itself (``outbox_relay.reconciliation``) has no SQL."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from outbox_relay.config import Reconciliation, StatusValue
from outbox_relay.models import ScannedRow
from outbox_relay.store.naming import expanding, quote
from outbox_relay.store.retry_state import RetryState
from outbox_relay.store.table import OutboxTable

REDELIVERY_NOTE = "re-delivery requested by reconciliation"


class ReconciliationQueries:
    def __init__(self, table: OutboxTable, retry_state: RetryState, rec: Reconciliation) -> None:
        self.table = table
        self.retry_state = retry_state
        self.rec = rec
        self._scan_sql = self._build_scan()

    def _build_scan(self) -> Any:
        t, cols = self.table, self.table.columns
        created = t.as_datetime("created_at") or "NULL"
        since_sent = f"COALESCE({quote(cols.sent_at)}, {created})" if cols.sent_at else created
        select = [f"{t.id_col} AS r_id", f"{t.status_col} AS r_status"]
        for logical, column in (
            ("mid", cols.message_id),
            ("key", cols.key),
            ("topic", cols.topic),
            ("error", cols.last_error),
        ):
            if column:
                select.append(f"{quote(column)} AS r_{logical}")
        select.append(f"({since_sent} < NOW(6) - INTERVAL :grace_us MICROSECOND) AS r_settled")
        return text(
            f"SELECT {', '.join(select)} FROM {t.name} WHERE {t.created('>=', ':since')} AND "
            f"{t.created('<', ':until')}{t.row_filter} AND {t.id_col} > :after ORDER BY {t.id_col} LIMIT :limit"
        )

    def window(self, conn: Connection, since: datetime | None, until: datetime | None) -> tuple[Any, Any]:
        """(start, end) on the DB clock: missing ends default to now and ``window_hours`` before the end."""
        row = conn.execute(
            text(
                "SELECT COALESCE(:since, COALESCE(:until, NOW(6)) - INTERVAL :hours_s SECOND), "
                "COALESCE(:until, NOW(6))"
            ),
            {"since": since, "until": until, "hours_s": int(self.rec.window_hours * 3600)},
        ).one()
        return row[0], row[1]

    def scan(self, conn: Connection, start: datetime, end: datetime, after: Any) -> list[ScannedRow]:
        """The next ``chunk_size`` rows created in ``[start, end)`` after primary key ``after``."""
        t = self.table
        params = {
            "since": start,
            "until": end,
            "after": after,
            "limit": self.rec.chunk_size,
            "grace_us": int(self.rec.grace_seconds * 1_000_000),
            **t.filter_params,
        }
        return [
            ScannedRow(
                row_id=r["r_id"],
                message_id=t.message_id_for(r["r_id"], r.get("r_mid")),
                business_id=r.get("r_key"),
                topic=r.get("r_topic") or t.config.topic,
                status=r["r_status"],
                error=r.get("r_error"),
                settled=bool(r["r_settled"]),
            )
            for r in conn.execute(self._scan_sql, params).mappings()
        ]

    def consumer_states(self, conn: Connection, message_ids: list[str]) -> dict[str, tuple[Any, Any]]:
        """Message id -> (status, error) from the consumers' table; a failed record wins over a consumed one."""
        cols = self.rec.columns
        error = quote(cols.error) if cols.error else "NULL"
        where = f"{quote(cols.message_id)} IN :ids"
        params: dict[str, Any] = {"ids": message_ids}
        if self.rec.row_filter is not None:
            where += f" AND {quote(self.rec.row_filter.column)} = :consumer_filter"
            params["consumer_filter"] = self.rec.row_filter.equals
        sql = expanding(
            f"SELECT {quote(cols.message_id)}, {quote(cols.status)}, {error} FROM "
            f"{quote(self.rec.consumer_table)} WHERE {where}",
            "ids",
        )
        states: dict[str, tuple[Any, Any]] = {}
        for mid, status, err in conn.execute(sql, params):
            if states.get(str(mid), (None,))[0] != self.rec.statuses.failed:
                states[str(mid)] = (status, err)
        return states

    def reset_to_new(self, conn: Connection, ids: list[Any]) -> int:
        """Back to new with a fresh retry budget: the relay publishes the row again."""
        st = self.table.statuses
        sets = self.table.set_clause(
            "to", [("attempts", "0"), ("next_attempt_at", "NULL"), ("last_error", ":note")]
        )
        from_ = [s for s in (st.sent, st.confirmed, st.failed) if s is not None]
        changed = self._update(conn, sets, ids, st.new, from_)
        self.retry_state.forget(conn, ids)
        return changed

    def mark_sent(self, conn: Connection, ids: list[Any]) -> int:
        """The consumer's record proves delivery: new/failed rows become sent (keeping a known send time)."""
        st, sent_at = self.table.statuses, self.table.columns.sent_at
        keep = [("sent_at", f"COALESCE({quote(sent_at)}, NOW(6))")] if sent_at else []
        sets = self.table.set_clause("to", [*keep, ("next_attempt_at", "NULL")])
        from_ = [s for s in (st.new, st.failed) if s is not None]
        return self._update(conn, sets, ids, st.sent, from_)

    def _update(
        self, conn: Connection, sets: str, ids: list[Any], to: StatusValue, from_: list[StatusValue]
    ) -> int:
        """Conditional on the status still being one of ``from_``: a row that moved on is left alone."""
        t = self.table
        sql = expanding(
            f"UPDATE {t.name} SET {sets} WHERE {t.id_col} IN :ids AND {t.status_in('from_', from_)}{t.row_filter}",
            "ids",
            "from_",
        )
        params = {"to": to, "ids": ids, "from_": from_, "note": REDELIVERY_NOTE, **t.filter_params}
        return int(conn.execute(sql, params).rowcount)


def purge_consumer_records(
    engine: Engine, rec: Reconciliation, status: StatusValue, days: float, chunk: int
) -> int:
    """Delete the consumers' records with ``status`` older than ``days``, ``chunk`` rows per transaction."""
    cols = rec.columns
    where = (
        f"{quote(cols.status)} = :status AND {quote(cols.created_at or '')} < NOW(6) - INTERVAL :age_s SECOND"
    )
    params: dict[str, Any] = {"limit": chunk, "status": status, "age_s": int(days * 86400)}
    if rec.row_filter is not None:
        where += f" AND {quote(rec.row_filter.column)} = :consumer_filter"
        params["consumer_filter"] = rec.row_filter.equals
    sql = text(f"DELETE FROM {quote(rec.consumer_table)} WHERE {where} LIMIT :limit")
    total = 0
    while True:
        with engine.begin() as conn:
            deleted = int(conn.execute(sql, params).rowcount)
        total += deleted
        if deleted < chunk:
            return total
