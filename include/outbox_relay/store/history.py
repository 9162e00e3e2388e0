"""The append-only row history (``outbox_relay_replay``; ``outbox-relay ddl`` prints its DDL): a record for
every row a replay requeued or republished, a backfill republished, a dead-letter replay re-published, and
for every failed attempt of the relay, each with who did it, why and in which run (``HistoryEntry``).
``explain`` lists a row's records."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError

from outbox_relay.models import DEAD_LETTER, Failure, HistoryEntry, HistoryRecord, OutboxRow
from outbox_relay.store.mysql_errors import is_missing_table
from outbox_relay.store.naming import REPLAY_TABLE, run_with_lists, truncate_error
from outbox_relay.store.sent_ranges import SentRanges
from outbox_relay.store.table import OutboxTable

log = logging.getLogger(__name__)


class RowHistory:
    def __init__(self, table: OutboxTable, sent_ranges: SentRanges) -> None:
        self.table = table
        self.sent_ranges = sent_ranges

    def record_republished(self, conn: Connection, rows: Sequence[OutboxRow], entry: HistoryEntry) -> None:
        """SENT rows the broker acknowledged again: history only; the row (and its run id, copied to the
        history as the run that first sent it) stays as it was."""
        first_runs = self.run_ids(conn, [r.row_id for r in rows])
        self.record(
            conn,
            "republish",
            [
                (r.row_id, r.message_id, r.status, r.attempts, None, first_runs.get(str(r.row_id)))
                for r in rows
            ],
            entry,
        )

    def run_ids(self, conn: Connection, row_ids: Sequence[Any]) -> dict[str, str | None]:
        """The run that sent each row, by ``str(row id)``: its ``relay_run_id`` where set, else its sent-range
        record (rows no run is known for are absent or None)."""
        t = self.table
        run_id = t.column("run_id")
        if not row_ids:
            return {}
        found: dict[str, str | None] = {}
        if run_id is not None:
            sql = f"SELECT {t.id_col}, {run_id} FROM {t.name} WHERE {t.id_col} IN :ids"
            found = {str(row[0]): row[1] for row in run_with_lists(conn, sql, {"ids": list(row_ids)})}
        unknown = [i for i in row_ids if found.get(str(i)) is None]
        return {**found, **self.sent_ranges.run_ids(conn, unknown)}

    def record_attempts(self, conn: Connection, failures: Sequence[Failure], run_id: str) -> None:
        """Failed attempts, one history row each (which run, which error, retried or given up): ``explain``
        then lists every run that touched a row. A missing history table (not created yet) is
        logged, not raised: it must not stop the relay from recording the failure itself."""
        if not failures:
            return
        max_attempts = self.table.config.retry.max_attempts
        try:
            for f in failures:
                what = "out of attempts" if f.terminal else f"retry in {f.delay_seconds:g}s"
                entry = HistoryEntry(
                    "relay", f"attempt {f.row.attempts + 1} of {max_attempts} failed; {what}", run_id
                )
                row = (
                    f.row.row_id,
                    f.row.message_id,
                    f.row.status,
                    f.row.attempts,
                    truncate_error(f.error),
                    None,
                )
                self.record(conn, "gave_up" if f.terminal else "attempt", [row], entry)
        except ProgrammingError as exc:
            if not is_missing_table(exc):
                raise
            log.warning(
                "%s is missing (create it: outbox-relay ddl --shared-only --apply): failed attempts are not "
                "recorded in the row history",
                REPLAY_TABLE,
            )

    def record_dead_letters(
        self, conn: Connection, copies: Sequence[tuple[str, str, str | None]], entry: HistoryEntry
    ) -> None:
        """Dead-letter copies published to their original topic again: (row id, message id, error)."""
        self.record(conn, DEAD_LETTER, [(r, m, None, None, e, None) for r, m, e in copies], entry)

    def record(self, conn: Connection, action: str, rows: list[tuple[Any, ...]], entry: HistoryEntry) -> None:
        """One history record per row: (row id, message id, previous status, attempts, error, run id)."""
        t = self.table
        sql = text(
            f"INSERT INTO {REPLAY_TABLE} (service, source_table, row_id, message_id, action, previous_status, "
            "previous_attempts, previous_error, previous_run_id, requested_by, reason, run_id) VALUES "
            "(:service, :tbl, :row_id, :message_id, :action, :status, :attempts, :error, :prev_run, :by, "
            ":reason, :run_id)"
        )
        conn.execute(
            sql,
            [
                {
                    **t.attempt_params,
                    "row_id": str(row_id),
                    "message_id": message_id,
                    "action": action,
                    "status": None if status is None else str(status),
                    "attempts": attempts,
                    "error": error,
                    "prev_run": run_id,
                    "by": entry.requested_by[:250],
                    "reason": entry.reason[:1000],
                    "run_id": entry.run_id[:250],
                }
                for row_id, message_id, status, attempts, error, run_id in rows
            ],
        )

    def of_row(self, conn: Connection, row_id: Any, limit: int = 50) -> list[HistoryRecord]:
        """A row's history, oldest first (primary-key lookups on the history's row index)."""
        sql = text(
            "SELECT action, previous_status, previous_error, previous_run_id, requested_by, reason, run_id, "
            f"created_at FROM {REPLAY_TABLE} WHERE service = :service AND source_table = :tbl "
            "AND row_id = :row_id ORDER BY id LIMIT :limit"
        )
        params = {**self.table.attempt_params, "row_id": str(row_id), "limit": limit}
        return [HistoryRecord(*r) for r in conn.execute(sql, params)]
