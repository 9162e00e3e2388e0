"""Deleting old terminal rows of an outbox table, and the attempt-table rows of rows given up on."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.config import StatusValue
from outbox_relay.store.naming import ATTEMPT_TABLE, expanding, run_with_lists
from outbox_relay.store.retry_state import AttemptTableRetryState
from outbox_relay.store.sent_ranges import SentRanges
from outbox_relay.store.table import OutboxTable


class RetentionQueries:
    def __init__(self, table: OutboxTable, sent_ranges: SentRanges) -> None:
        self.table = table
        self.sent_ranges = sent_ranges

    def forget_sent_ranges(self, conn: Connection, limit: int) -> int:
        """Sent-range records whose rows are all deleted (up to ``limit``)."""
        return self.sent_ranges.forget_gone(conn, limit)

    def expired_ids(
        self, conn: Connection, statuses: Sequence[StatusValue], age_seconds: float, after: Any, limit: int
    ) -> list[Any]:
        """A plain (non-locking) read of the next chunk of expired terminal rows."""
        t = self.table
        sql = expanding(
            f"SELECT {t.id_col} FROM {t.name} WHERE {t.status_in('statuses', statuses)} "
            f"AND {t.older_than('age_s')} AND {t.id_col} > :after"
            f"{t.row_filter} ORDER BY {t.id_col} LIMIT :limit",
            "statuses",
        )
        params = {"statuses": list(statuses), "age_s": int(age_seconds), "after": after, "limit": limit}
        return [r[0] for r in conn.execute(sql, {**params, **t.filter_params})]

    def delete_expired(
        self, conn: Connection, ids: Sequence[Any], statuses: Sequence[StatusValue], age_seconds: float
    ) -> int:
        """Delete by primary key, re-checking status and age so only those rows are touched."""
        t = self.table
        sql = (
            f"DELETE FROM {t.name} WHERE {t.id_col} IN :ids "
            f"AND {t.status_in('statuses', statuses)} AND {t.older_than('age_s')}{t.row_filter}"
        )
        params = {"ids": list(ids), "statuses": list(statuses), "age_s": int(age_seconds), **t.filter_params}
        return int(run_with_lists(conn, sql, params).rowcount)

    def expired_given_up_ids(self, conn: Connection, age_seconds: float, limit: int) -> list[str]:
        """Rows given up on, for tables whose FAILED state lives in the attempt table."""
        sql = text(
            f"SELECT row_id FROM {ATTEMPT_TABLE} WHERE service = :service AND source_table = :tbl "
            "AND failed = 1 AND updated_at < NOW(6) - INTERVAL :age_s SECOND ORDER BY row_id LIMIT :limit"
        )
        params = {**self.table.attempt_params, "age_s": int(age_seconds), "limit": limit}
        return [r[0] for r in conn.execute(sql, params)]

    def delete_given_up(self, conn: Connection, row_ids: Sequence[str]) -> int:
        """Delete rows given up on (still NEW when ``statuses.failed`` is null) and their attempt rows."""
        t = self.table
        given_up = [s for s in (t.statuses.new, t.statuses.failed) if s is not None]
        sql = expanding(
            f"DELETE FROM {t.name} WHERE {t.id_col} IN :ids AND {t.status_in('given_up', given_up)}",
            "ids",
            "given_up",
        )
        deleted = conn.execute(sql, {"ids": list(row_ids), "given_up": given_up}).rowcount
        AttemptTableRetryState(t).forget(conn, row_ids)
        return int(deleted)
