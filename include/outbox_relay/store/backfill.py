"""Backfill SQL: what a window holds, which keys must wait for rows older than the window, and where a
retried backfill run resumes. Each statement reads one bounded range of an index."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.errors import MissingConfigurationError
from outbox_relay.models import Window
from outbox_relay.store.figures import BacklogFigures
from outbox_relay.store.naming import REPLAY_TABLE
from outbox_relay.store.retry_state import RetryState
from outbox_relay.store.sent_ranges import SentRanges
from outbox_relay.store.table import OutboxTable


class BackfillQueries:
    def __init__(
        self, table: OutboxTable, retry_state: RetryState, figures: BacklogFigures, sent_ranges: SentRanges
    ) -> None:
        self.table = table
        self.retry_state = retry_state
        self.figures = figures
        self.sent_ranges = sent_ranges

    def _require_created_at(self) -> None:
        if self.table.column("created_at") is None:
            raise MissingConfigurationError(
                f"service {self.table.config.service!r}: a backfill selects rows by creation time, but "
                f"table {self.table.config.table} has no columns.created_at mapped"
            )

    def _window(self) -> str:
        """``created_at`` in ``[:start, :end)``, in the column's own unit."""
        self._require_created_at()
        return f"{self.table.created('>=', ':start')} AND {self.table.created('<', ':end')}"

    def counts(self, conn: Connection, window: Window) -> dict[str, int]:
        """Rows of the window by status (NEW rows given up on are counted apart, as 'given_up')."""
        t = self.table
        in_window = self._window()
        params = t.params(start=window.start, end=window.end)
        counts = self.figures.by_status(conn, in_window, start=window.start, end=window.end)
        given_up = self.retry_state.given_up
        if given_up and t.statuses.failed is None:
            sql = text(
                f"SELECT COUNT(*) FROM {t.name} WHERE {t.status_eq('new', t.statuses.new)} AND {in_window}"
                f"{t.row_filter} {given_up}"
            )
            counts["given_up"] = int(conn.execute(sql, {**params, "new": t.statuses.new}).scalar() or 0)
        return counts

    def keys_pending_before(self, conn: Connection, moment: Any) -> set[Any]:
        """Keys with a row created before ``moment`` that is still waiting to be published (NEW, not given
        up on): a window's rows of these keys must not overtake it."""
        key = self.table.column("key")
        if key is None:
            return set()
        t = self.table
        self._require_created_at()
        sql = text(
            f"SELECT DISTINCT {key} FROM {t.name} WHERE {t.status_eq('new', t.statuses.new)} "
            f"AND {t.created('<', ':before')}"
            f"{t.row_filter}{self.retry_state.not_given_up}"
        )
        params = t.params(new=t.statuses.new, before=moment)
        return {r[0] for r in conn.execute(sql, params) if r[0] is not None}

    def resume_point(self, conn: Connection, window: Window, run_id: str) -> Any:
        """Where a retried attempt of a republishing backfill run goes on: after the last row of the window
        the run sent or republished (rows are claimed in primary-key order), so it does not send them
        again. None: the run has not sent anything yet."""
        t = self.table
        history = text(
            f"SELECT row_id FROM {REPLAY_TABLE} WHERE run_id = :run_id AND service = :service "
            "AND source_table = :tbl AND action = 'republish' ORDER BY id DESC LIMIT 1"
        )  # the newest history rows are read first: a retry follows its first attempt closely
        params = {"run_id": run_id[:250], **t.attempt_params}
        republished = conn.execute(history, params).scalar()
        ranged = self.sent_ranges.last_row_of_run(conn, run_id)
        run_col = t.column("run_id")
        if republished is None and ranged is None and run_col is None:
            return None
        mine = [f"{t.id_col} = :republished", f"{t.id_col} = :ranged"]
        mine += [f"{run_col} = :run_id"] if run_col else []
        sql = text(
            f"SELECT {t.order_sql} FROM {t.name} WHERE {self._window()}{t.row_filter} AND ({' OR '.join(mine)}) "
            f"ORDER BY {t.order_sql_desc} LIMIT 1"
        )
        params.update(
            republished=republished, ranged=ranged, start=window.start, end=window.end, **t.filter_params
        )
        last = conn.execute(sql, params).first()
        if last is None:
            return None
        return tuple(last) if t.ordered else last[0]
