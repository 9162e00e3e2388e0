"""Reading one row and what stands in its way, for ``outbox-relay explain``: bounded primary-key and
unique-key lookups, never a scan."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.models import RowSnapshot
from outbox_relay.store.retry_state import RetryState
from outbox_relay.store.sent_ranges import SentRanges
from outbox_relay.store.table import OutboxTable

# Logical fields read when the table maps them (absent ones come back as None).
_FIELDS = (
    "message_id",
    "key",
    "event_type",
    "topic",
    "attempts",
    "last_error",
    "next_attempt_at",
    "not_before",
    "created_at",
    "sent_at",
    "run_id",
    "confirmed_at",
)


class ExplainQueries:
    def __init__(self, table: OutboxTable, retry_state: RetryState, sent_ranges: SentRanges) -> None:
        self.table = table
        self.retry_state = retry_state
        self.sent_ranges = sent_ranges
        t = table
        self._mapped = [f for f in _FIELDS if t.column(f)]
        select = [f"{t.id_col} AS r_id", f"{t.status_col} AS r_status", "NOW(6) AS r_now"]
        select += [f"{t.as_datetime(f)} AS f_{f}" for f in self._mapped]
        self._select = f"SELECT {', '.join(select)} FROM {t.name}"

    def find(self, conn: Connection, reference: str) -> RowSnapshot | None:
        """The row whose message id is ``reference``, else whose primary key is (rows of other services
        sharing the table are not found)."""
        t = self.table
        row = None
        if t.stores_message_ids:
            sql = text(f"{self._select} WHERE {t.column('message_id')} = :ref{t.row_filter}")
            row = conn.execute(sql, {"ref": reference, **t.filter_params}).mappings().first()
        if row is None:
            derived = t.row_id_from_message_id(reference)
            sql = text(f"{self._select} WHERE {t.id_col} = :ref{t.row_filter}")
            row = conn.execute(sql, {"ref": derived or reference, **t.filter_params}).mappings().first()
        return None if row is None else self._snapshot(conn, row)

    def _snapshot(self, conn: Connection, row: Any) -> RowSnapshot:
        t = self.table
        fields = {f: row[f"f_{f}"] for f in self._mapped}
        if fields.get("run_id") is None and row["r_status"] != t.statuses.new:
            run = self.sent_ranges.run_ids(conn, [row["r_id"]]).get(str(row["r_id"]))
            if run is not None:
                fields["run_id"] = run
        outside = self.retry_state.outside_states(conn, [row["r_id"]]).get(str(row["r_id"]))
        attempts, error, next_at, given_up = outside or (
            fields.get("attempts"),
            fields.get("last_error"),
            fields.get("next_attempt_at"),
            False,
        )
        return RowSnapshot(
            row_id=row["r_id"],
            message_id=t.message_id_for(row["r_id"], fields.get("message_id")),
            status=row["r_status"],
            fields=fields,
            attempts=int(attempts or 0),
            last_error=None if error is None else str(error),
            next_attempt_at=next_at,
            given_up=given_up,
            now=row["r_now"],
        )

    def waiting_ahead(self, conn: Connection, snapshot: RowSnapshot) -> RowSnapshot | None:
        """The oldest older NEW row of the same key that waits for its retry time: the relay holds every
        newer row of that key behind it (per-key order)."""
        t = self.table
        key_col, key = t.column("key"), snapshot.fields.get("key")
        if key_col is None or key is None:
            return None
        sql = text(
            f"{self._select} WHERE {key_col} = :key AND {t.status_eq('new', t.statuses.new)} AND {t.id_col} < :id "
            f"AND {self.retry_state.waiting_condition}{t.row_filter} ORDER BY {t.id_col} LIMIT 1"
        )
        params = {
            "key": key,
            "new": t.statuses.new,
            "id": snapshot.row_id,
            **t.attempt_params,
            **t.filter_params,
        }
        row = conn.execute(sql, params).mappings().first()
        return None if row is None else self._snapshot(conn, row)
