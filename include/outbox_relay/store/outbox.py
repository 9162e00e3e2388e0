"""The relay's writes to an outbox table and the on-call view of it.

``OutboxStore`` is the one object the relay, the confirmation ingester and the CLI hold: it puts the
table's naming, its lock, its claim query and its retry-state strategy together. Times are the
database's (``NOW(6)``), never the relay host's, so a skewed relay clock cannot relay or delete early.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.config import ServiceConfig
from outbox_relay.models import Confirmation, Failure, OutboxRow, Window
from outbox_relay.store.backfill import BackfillQueries
from outbox_relay.store.claim import ClaimQuery
from outbox_relay.store.locks import BusyRuns, RelayLock, backfill_lock, relay_lock
from outbox_relay.store.naming import expanding, quote, run_with_lists, truncate_error
from outbox_relay.store.replay import ReplayAudit, ReplayQueries
from outbox_relay.store.retry_state import retry_state_for
from outbox_relay.store.table import OutboxTable


class OutboxStore:
    """SQL for one service's outbox table, built once from its config."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.table = OutboxTable(config)
        self.lock = relay_lock(self.table)
        self.backfill_lock = backfill_lock(self.table)
        self.retry_state = retry_state_for(self.table)
        self.claims = ClaimQuery(self.table, self.retry_state)
        self.replays = ReplayQueries(self.table, self.retry_state)
        self.backfills = BackfillQueries(self.table, self.retry_state)

    def lock_for(self, shard: int | None) -> RelayLock:
        """The relay lock a run of ``shard`` holds (the whole table's for None)."""
        return self.lock if shard is None else relay_lock(self.table, shard)

    def busy_runs(self, shard: int | None) -> BusyRuns:
        """The count of runs in a row that found the relay lock of ``shard`` held."""
        return BusyRuns(self.config.service, shard)

    def cursor_start(self, conn: Connection) -> Any:
        return self.table.cursor_start(conn)

    def claim(
        self,
        conn: Connection,
        after: Any,
        limit: int,
        window: Window | None = None,
        republish: bool = False,
        named: Sequence[Any] = (),
        shard: int | None = None,
    ) -> list[OutboxRow]:
        return self.claims.claim(conn, after, limit, window, republish, named, shard)

    # --- outcome of a batch ----------------------------------------------------------

    def mark_sent(
        self, conn: Connection, rows: Sequence[OutboxRow], run_id: str, replay: ReplayAudit | None = None
    ) -> int:
        """One statement for the whole batch of acknowledged rows. In a republish run (``replay`` given)
        rows that were SENT already keep their status and run id: the replay history records the
        republish instead. Plain runs claim only NEW rows, so they skip that sorting."""
        if replay is not None:
            sent = self.table.statuses.sent
            again = [r for r in rows if r.status == sent]
            if again:
                self.replays.record_republished(conn, again, replay)
                rows = [r for r in rows if r.status != sent]
        if not rows:
            return 0
        t = self.table
        sets = t.set_clause(
            "sent", [("sent_at", "NOW(6)"), ("run_id", ":run_id"), ("next_attempt_at", "NULL")]
        )
        params = {
            "ids": [r.row_id for r in rows], "sent": t.statuses.sent, "run_id": run_id[:250],
            "claimed": [t.statuses.new, t.statuses.sent],
        }  # fmt: skip
        done = self._complete(conn, f"{t.id_col} IN :ids", sets, params)
        self.retry_state.forget(conn, [r.row_id for r in rows if r.attempts])
        return done

    def _complete(self, conn: Connection, ids: str, sets: str, params: dict[str, Any]) -> int:
        """Record the acknowledgement the configured way (``completion``) for the rows ``ids`` names, if
        they are still claimable; the number of rows completed."""
        t = self.table
        ours = f"{ids} AND {t.status_in('claimed', [t.statuses.new, t.statuses.sent])}"
        if t.config.completion == "delete":
            return self._run(conn, f"DELETE FROM {t.name} WHERE {ours}", params)
        if not sets:  # a status-less archived table: the move is the whole completion
            return self._archive(conn, ours, params)
        done = self._run(conn, f"UPDATE {t.by_primary_key} SET {sets} WHERE {ours}", params)
        if t.config.completion == "archive":
            self._archive(conn, f"{ids} AND {t.status_eq('sent', t.statuses.sent)}", params)
        return done

    def _archive(self, conn: Connection, rows: str, params: dict[str, Any]) -> int:
        """Move the rows ``rows`` selects into the archive table (same shape); how many moved."""
        t = self.table
        assert t.config.archive_table is not None, "validated by ServiceConfig"
        self._run(
            conn, f"INSERT INTO {quote(t.config.archive_table)} SELECT * FROM {t.name} WHERE {rows}", params
        )
        return self._run(conn, f"DELETE FROM {t.name} WHERE {rows}", params)

    @staticmethod
    def _run(conn: Connection, sql: str, params: dict[str, Any]) -> int:
        return int(run_with_lists(conn, sql, params).rowcount)

    def record_failures(self, conn: Connection, failures: Sequence[Failure], run_id: str) -> None:
        """Attempts+1 (FAILED once out of attempts) and one row-history entry per failed attempt."""
        self.retry_state.record_failures(conn, failures)
        self.replays.record_attempts(conn, failures, run_id)

    def waiting_keys(self, conn: Connection) -> set[Any]:
        """Keys that have a NEW row waiting for its retry time (none for a table without a key column)."""
        key = self.table.column("key")
        return set() if key is None else self.retry_state.waiting_keys(conn, key)

    # --- confirmations ---------------------------------------------------------------

    def apply_confirmations(
        self, conn: Connection, confirmations: Sequence[Confirmation]
    ) -> tuple[int, int, list[str]]:
        """Apply a batch; terminal states are never overwritten. Returns (confirmed, failed, unknown ids)."""
        t = self.table
        lookup_col = t.column("message_id") or t.id_col
        wanted: dict[Any, Confirmation] = {}
        unknown: list[str] = []
        for c in confirmations:
            lookup = c.message_id if t.stores_message_ids else t.row_id_from_message_id(c.message_id)
            if lookup is None:
                unknown.append(c.message_id)
            else:
                wanted.setdefault(lookup, c)  # the first word on a message wins, as with one clean delivery
        if not wanted:
            return 0, 0, unknown
        confirmed = self._confirm(conn, lookup_col, [k for k, c in wanted.items() if c.success])
        failed = self._fail(conn, lookup_col, [(k, c) for k, c in wanted.items() if not c.success])
        if confirmed + failed < len(wanted):  # some were already terminal or are unknown: find the unknown
            sql = expanding(f"SELECT {lookup_col} FROM {t.name} WHERE {lookup_col} IN :ids", "ids")
            found = {str(r[0]) for r in conn.execute(sql, {"ids": list(wanted)})}
            unknown += [c.message_id for k, c in wanted.items() if str(k) not in found]
        return confirmed, failed, unknown

    def _confirm(self, conn: Connection, lookup_col: str, keys: list[Any]) -> int:
        if not keys:
            return 0
        t = self.table
        sets = t.set_clause("confirmed", [("confirmed_at", "NOW(6)")])
        sql = expanding(
            f"UPDATE {t.name} SET {sets} WHERE {lookup_col} IN :ids AND {t.status_in('open', t.open_statuses)}",
            "ids",
            "open",
        )
        params = {"confirmed": t.statuses.confirmed, "ids": keys, "open": t.open_statuses}
        return int(conn.execute(sql, params).rowcount)

    def _fail(self, conn: Connection, lookup_col: str, items: list[tuple[Any, Confirmation]]) -> int:
        if not items:
            return 0
        t = self.table
        sets = t.set_clause("failed", [("last_error", ":error"), ("confirmed_at", "NOW(6)")])
        sql = expanding(
            f"UPDATE {t.name} SET {sets} WHERE {lookup_col} = :id AND {t.status_in('open', t.open_statuses)}",
            "open",
        )
        total = 0
        for key, c in items:
            params = {
                "failed": t.statuses.failed,
                "error": truncate_error(c.error or "consumer reported FAILED without an error text"),
                "id": key,
                "open": t.open_statuses,
            }
            total += int(conn.execute(sql, params).rowcount)
        return total

    # --- on-call view ----------------------------------------------------------------

    def backlog(self, conn: Connection) -> dict[str, Any]:
        """Rows by stored status, and how long the oldest NEW row has waited (DB clock)."""
        t = self.table
        sql = text(f"SELECT {t.status_col}, COUNT(*) FROM {t.name} WHERE 1 = 1{t.row_filter} GROUP BY 1")
        counts = {str(r[0]): int(r[1]) for r in conn.execute(sql, t.filter_params)}
        summary: dict[str, Any] = {"rows_by_status": counts}
        created = t.as_datetime("created_at")
        if created:
            oldest = conn.execute(
                text(
                    f"SELECT TIMESTAMPDIFF(SECOND, MIN({created}), NOW(6)) FROM {t.name} "
                    f"WHERE {t.status_eq('new', t.statuses.new)}{t.row_filter}{self.retry_state.not_given_up}"
                ),
                {"new": t.statuses.new, **t.attempt_params, **t.filter_params},
            ).scalar()
            summary["oldest_new_seconds"] = None if oldest is None else int(oldest)
        return summary
