"""The one way into a service's outbox table: ``OutboxStore``.

Everything outside ``store`` that reads or writes a service's outbox table goes through its
``OutboxStore``: it owns the table's naming, its retry-state strategy and its locks, hands out the query
objects (claim, backfill, replay, the row history, explain, the page's lists and activity, backlog figures,
reconciliation, retention, audit, the trigger's watch look), each built once on first use, and records the
relay's outcomes and the consumers' confirmations itself. Times are the database's (``NOW(6)``), never the
relay host's, so a skewed relay clock cannot relay or delete early.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import Any

from sqlalchemy import Connection

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.models import ConfirmationMessage, Failure, HistoryEntry, OutboxRow, Window
from outbox_relay.store.activity import ActivityQueries
from outbox_relay.store.audit import AuditQueries
from outbox_relay.store.backfill import BackfillQueries
from outbox_relay.store.claim import ClaimQuery
from outbox_relay.store.dashboard import DashboardQueries
from outbox_relay.store.explain import ExplainQueries
from outbox_relay.store.figures import BacklogFigures
from outbox_relay.store.history import RowHistory
from outbox_relay.store.introspection import IndexHints
from outbox_relay.store.locks import BusyRuns, RelayLock, backfill_lock, relay_lock
from outbox_relay.store.naming import expanding, quote, run_with_lists, truncate_error
from outbox_relay.store.reconciliation import ReconciliationQueries
from outbox_relay.store.replay import ReplayQueries
from outbox_relay.store.retention import RetentionQueries
from outbox_relay.store.retry_state import retry_state_for
from outbox_relay.store.sent_ranges import SentRanges
from outbox_relay.store.table import OutboxTable
from outbox_relay.store.watch import WatchQuery

__all__ = ["OutboxStore", "expanding"]


class OutboxStore:
    """One service's outbox table, built once from its config: the facade every caller gets its queries
    from (nobody outside ``store`` builds the table, the retry state or a query class)."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.table = OutboxTable(config)
        self.lock = relay_lock(self.table)
        self.backfill_lock = backfill_lock(self.table)
        self.retry_state = retry_state_for(self.table)
        self.index_hints = IndexHints(config.table)

    # --- the query objects, each built on first use ------------------------------------

    @cached_property
    def claims(self) -> ClaimQuery:
        return ClaimQuery(self.table, self.retry_state)

    @cached_property
    def sent_ranges(self) -> SentRanges:
        """Which run sent which rows, per batch (``outbox_relay_sent_range``)."""
        return SentRanges(self.table)

    @cached_property
    def history(self) -> RowHistory:
        """The row history (``outbox_relay_replay``): replays, republishes, failed attempts."""
        return RowHistory(self.table, self.sent_ranges)

    @cached_property
    def replays(self) -> ReplayQueries:
        """Replay candidates and requeues."""
        return ReplayQueries(self.table, self.retry_state, self.history, self.sent_ranges)

    @cached_property
    def backfills(self) -> BackfillQueries:
        return BackfillQueries(self.table, self.retry_state, self.figures, self.sent_ranges)

    @cached_property
    def figures(self) -> BacklogFigures:
        """Rows per status, the backlog count, the oldest waiting rows' ages (one definition each)."""
        return BacklogFigures(self.table, self.retry_state, self.index_hints)

    @cached_property
    def dashboard(self) -> DashboardQueries:
        """The Outbox page's row lists, per-minute counts and row content."""
        return DashboardQueries(self.table, self.retry_state, self.index_hints)

    @cached_property
    def activity(self) -> ActivityQueries:
        """The page's chart: the last hour per minute."""
        return ActivityQueries(self.dashboard)

    @cached_property
    def explain(self) -> ExplainQueries:
        """One row and what stands in its way."""
        return ExplainQueries(self.table, self.retry_state, self.sent_ranges)

    @cached_property
    def watch(self) -> WatchQuery:
        """The trigger's one-statement look: is a row ready to send?"""
        return WatchQuery(self.table, self.retry_state)

    @cached_property
    def reconciliation(self) -> ReconciliationQueries:
        """The comparison with the consumer's table (needs the service's ``reconciliation`` section)."""
        if self.config.reconciliation is None:
            raise ConfigurationError(f"service {self.config.service!r} has no 'reconciliation' section")
        return ReconciliationQueries(self.table, self.retry_state, self.config.reconciliation)

    @cached_property
    def retention(self) -> RetentionQueries:
        return RetentionQueries(self.table, self.sent_ranges)

    @cached_property
    def audit(self) -> AuditQueries:
        """Sent rows by creation time, to compare with the topic (needs ``columns.created_at``)."""
        return AuditQueries(self.table)

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
        self, conn: Connection, rows: Sequence[OutboxRow], run_id: str, history: HistoryEntry | None = None
    ) -> int:
        """One statement for the whole batch of acknowledged rows, and which run sent them: as ranges of row
        ids (``sent_ranges``, the row's run id column set to NULL) where they serve, else in each row. In a
        republish run (``history`` given) rows that were SENT already keep their status and run id: the row
        history records the republish instead. Plain runs claim only NEW rows, so they skip that sorting."""
        if history is not None:
            sent = self.table.statuses.sent
            again = [r for r in rows if r.status == sent]
            if again:
                self.history.record_republished(conn, again, history)
                rows = [r for r in rows if r.status != sent]
        if not rows:
            return 0
        t = self.table
        ids = [r.row_id for r in rows]
        spans = self.sent_ranges.spans_for(conn, ids)
        run_value = ":run_id" if spans is None else "NULL"
        sets = t.set_clause(
            "sent", [("sent_at", "NOW(6)"), ("run_id", run_value), ("next_attempt_at", "NULL")]
        )
        params = {
            "ids": ids,
            "sent": t.statuses.sent,
            "run_id": run_id[:250],
            "claimed": [t.statuses.new, t.statuses.sent],
        }
        done = self._complete(conn, f"{t.id_col} IN :ids", sets, params)
        if spans is not None:
            self.sent_ranges.record(conn, spans, run_id)
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

    def sent_by(self, conn: Connection, row_ids: Sequence[Any]) -> dict[str, str | None]:
        """The relay run that sent each row, by ``str(row id)`` (its column, else its sent-range record)."""
        return self.history.run_ids(conn, row_ids)

    def record_failures(self, conn: Connection, failures: Sequence[Failure], run_id: str) -> None:
        """Attempts+1 (FAILED once out of attempts) and one row-history entry per failed attempt."""
        self.retry_state.record_failures(conn, failures)
        self.history.record_attempts(conn, failures, run_id)

    def waiting_keys(self, conn: Connection) -> set[Any]:
        """Keys that have a NEW row waiting for its retry time (none for a table without a key column)."""
        key = self.table.column("key")
        return set() if key is None else self.retry_state.waiting_keys(conn, key)

    # --- confirmations ---------------------------------------------------------------

    def apply_confirmations(
        self, conn: Connection, confirmations: Sequence[ConfirmationMessage]
    ) -> tuple[int, int, list[str]]:
        """Apply a batch; terminal states are never overwritten. Returns (confirmed, failed, unknown ids)."""
        t = self.table
        lookup_col = t.column("message_id") or t.id_col
        wanted: dict[Any, ConfirmationMessage] = {}
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

    def _fail(self, conn: Connection, lookup_col: str, items: list[tuple[Any, ConfirmationMessage]]) -> int:
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
        """Rows by stored status, and (with a creation time) the oldest NEW age (``figures``' definition:
        how long the row the relay sends next has waited, DB clock; None when none waits)."""
        summary: dict[str, Any] = {"rows_by_status": self.figures.by_status(conn)}
        if self.table.as_datetime("created_at"):
            summary["oldest_new_seconds"] = self.figures.oldest_new_age_seconds(conn)
        return summary
