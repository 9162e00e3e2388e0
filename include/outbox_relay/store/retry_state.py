"""Where a row's retry state lives: in the outbox table's own columns, or in the shared attempt table.

Tables that map ``attempts``/``last_error``/``next_attempt_at`` keep the state inline; tables that cannot
be altered keep it in ``outbox_relay_attempt`` (one row per failing outbox row, deleted once it is sent).
Both strategies answer the same questions, so the claim, the relay and reconciliation never branch on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, text

from outbox_relay.models import Failure, OutboxRow
from outbox_relay.store.naming import ATTEMPT_TABLE, expanding, quote, run_with_lists, truncate_error
from outbox_relay.store.table import OutboxTable

# attempts, last error, next attempt time, given up: one row's entry in the attempt table.
OutsideState = tuple[int, str | None, datetime | None, bool]


class RetryState(Protocol):
    def claim_columns(self) -> tuple[str, str] | None:
        """SQL for (attempts, waiting-for-retry) read with the claim itself, or None when read after it."""

    @property
    def not_given_up(self) -> str:
        """A WHERE fragment leaving out rows given up on that still carry the NEW status (else '')."""

    @property
    def given_up(self) -> str:
        """The opposite WHERE fragment: only NEW rows given up on (none where those carry FAILED)."""

    def load(self, conn: Connection, rows: list[OutboxRow]) -> None:
        """Fill in the claimed rows' attempts / waiting / failed when the claim could not read them."""

    def waiting_keys(self, conn: Connection, key: str) -> set[Any]:
        """Values of the (quoted) key column with a NEW row waiting for its retry time: their newer rows
        must wait too."""

    def record_failures(self, conn: Connection, failures: Sequence[Failure]) -> None:
        """Attempts+1, error and next attempt time; FAILED (or given up) once out of attempts."""

    def forget(self, conn: Connection, row_ids: Sequence[Any]) -> None:
        """Drop retry state kept outside the row (rows sent, or reset to NEW with a fresh budget)."""

    @property
    def waiting_condition(self) -> str:
        """A WHERE fragment: this row of the table waits for its retry time (needs ``attempt_params``)."""

    def outside_states(self, conn: Connection, row_ids: Sequence[Any]) -> dict[str, OutsideState]:
        """The state of the rows that have it kept outside the row, by ``str(row id)`` (none when it is in
        the rows' own columns); one statement for all of them."""


def not_before_waits(table: OutboxTable, qualifier: str | None = None) -> str | None:
    """A row waiting for its writer's not-before time (``columns.not_before``), or None when the table
    keeps no such column of its own (the standard table's next_attempt_at serves as both)."""
    column = table.columns.not_before
    if column is None or column == table.columns.next_attempt_at:
        return None
    name = table.column_on(qualifier, "not_before")
    return f"({name} IS NOT NULL AND {name} > NOW(6))"


def _or_not_before(table: OutboxTable, waiting: str) -> str:
    extra = not_before_waits(table)
    return waiting if extra is None else f"({waiting} OR {extra})"


class InlineRetryState:
    def __init__(self, table: OutboxTable) -> None:
        self.table = table
        columns = table.columns
        assert columns.attempts and columns.last_error and columns.next_attempt_at, "validated by Columns"
        self.attempts, self.last_error = quote(columns.attempts), quote(columns.last_error)
        self.next_attempt_at = quote(columns.next_attempt_at)

    def claim_columns(self) -> tuple[str, str]:
        nxt = self.next_attempt_at
        return f"COALESCE({self.attempts}, 0)", _or_not_before(
            self.table, f"({nxt} IS NOT NULL AND {nxt} > NOW(6))"
        )

    @property
    def not_given_up(self) -> str:
        return ""  # a row given up on has the FAILED status, which claims never select

    @property
    def given_up(self) -> str:
        return " AND 1 = 0"

    def load(self, conn: Connection, rows: list[OutboxRow]) -> None:
        return None

    def waiting_keys(self, conn: Connection, key: str) -> set[Any]:
        t = self.table
        waiting = _or_not_before(t, f"{self.next_attempt_at} > NOW(6)")
        sql = text(
            f"SELECT DISTINCT {key} AS k FROM {t.name} "
            f"WHERE {t.status_eq('new', t.statuses.new)} AND {waiting}{t.row_filter}"
        )
        return {r[0] for r in conn.execute(sql, {"new": t.statuses.new, **t.filter_params})}

    def record_failures(self, conn: Connection, failures: Sequence[Failure]) -> None:
        if not failures:
            return
        t = self.table
        sql = text(
            f"UPDATE {t.by_primary_key} SET {self.attempts} = COALESCE({self.attempts}, 0) + 1, "
            f"{self.last_error} = :error, "
            f"{self.next_attempt_at} = NOW(6) + INTERVAL :delay_us MICROSECOND, "
            f"{t.status_col} = :status WHERE {t.id_col} = :id"
        )
        params = [
            {
                "error": truncate_error(f.error),
                "delay_us": int(f.delay_seconds * 1_000_000),
                "status": t.statuses.failed if f.terminal else f.row.status,
                "id": f.row.row_id,
            }
            for f in failures
        ]
        conn.execute(sql, params)

    def forget(self, conn: Connection, row_ids: Sequence[Any]) -> None:
        return None  # the row's own columns are reset by the statement that changes its status

    @property
    def waiting_condition(self) -> str:
        return _or_not_before(self.table, f"{self.next_attempt_at} > NOW(6)")

    def outside_states(self, conn: Connection, row_ids: Sequence[Any]) -> dict[str, OutsideState]:
        return {}


class AttemptTableRetryState:
    def __init__(self, table: OutboxTable) -> None:
        self.table = table

    def claim_columns(self) -> tuple[str, str] | None:
        """Attempts come from the attempt table after the claim (``load``); a not-before column is read
        with the claim itself."""
        waiting = not_before_waits(self.table)
        return None if waiting is None else ("0", waiting)

    @property
    def not_given_up(self) -> str:
        """With ``statuses.failed: null`` a row given up on stays NEW, marked only in the attempt table:
        leave it out of claims and backlog ages, or every pass would claim and skip it again and the
        oldest-NEW age would grow for ever. (Primary-key lookups in the attempt table.)"""
        t = self.table
        if t.statuses.failed is not None:
            return ""
        return f" AND NOT{self._given_up_exists}"

    @property
    def given_up(self) -> str:
        return " AND 1 = 0" if self.table.statuses.failed is not None else f" AND{self._given_up_exists}"

    @property
    def _given_up_exists(self) -> str:
        t = self.table
        return (
            f" EXISTS (SELECT 1 FROM {ATTEMPT_TABLE} given_up WHERE given_up.service = :service"
            f" AND given_up.source_table = :tbl AND given_up.row_id = CAST({t.name}.{t.id_col} AS CHAR)"
            " AND given_up.failed = 1)"
        )

    def load(self, conn: Connection, rows: list[OutboxRow]) -> None:
        if not rows:
            return
        sql = expanding(
            f"SELECT row_id, attempts, (next_attempt_at IS NOT NULL AND next_attempt_at > NOW(6)) AS waiting,"
            f" failed FROM {ATTEMPT_TABLE} WHERE service = :service AND source_table = :tbl"
            " AND row_id IN :ids",
            "ids",
        )
        by_id = {str(r.row_id): r for r in rows}
        for state in conn.execute(sql, {**self.table.attempt_params, "ids": list(by_id)}).mappings():
            row = by_id[state["row_id"]]
            row.attempts = int(state["attempts"])
            row.waiting = row.waiting or bool(state["waiting"])  # its not-before time, read by the claim
            row.failed = bool(state["failed"])

    def waiting_keys(self, conn: Connection, key: str) -> set[Any]:
        t = self.table
        sql = text(
            f"SELECT DISTINCT {t.column_on('o', 'key') or key} AS k FROM {ATTEMPT_TABLE} a JOIN {t.name} o "
            f"ON o.{t.id_col} = a.row_id WHERE a.service = :service AND a.source_table = :tbl "
            f"AND a.failed = 0 AND a.next_attempt_at > NOW(6) AND {t.status_eq('new', t.statuses.new, 'o')}"
            + t.row_filter_on("o")
        )
        params = {"new": t.statuses.new, **t.attempt_params, **t.filter_params}
        found = {r[0] for r in conn.execute(sql, params)}
        scheduled = not_before_waits(t)
        if scheduled is not None:
            sql = text(
                f"SELECT DISTINCT {key} AS k FROM {t.name} WHERE {t.status_eq('new', t.statuses.new)} "
                f"AND {scheduled}{t.row_filter}"
            )
            found |= {r[0] for r in conn.execute(sql, {"new": t.statuses.new, **t.filter_params})}
        return found

    def record_failures(self, conn: Connection, failures: Sequence[Failure]) -> None:
        if not failures:
            return
        t = self.table
        sql = text(
            f"INSERT INTO {ATTEMPT_TABLE} (service, source_table, row_id, attempts, last_error, "
            "next_attempt_at, failed) VALUES (:service, :tbl, :row_id, :attempts, :error, "
            "NOW(6) + INTERVAL :delay_us MICROSECOND, :failed) ON DUPLICATE KEY UPDATE "
            # The parameters again, not VALUES(): deprecated in MySQL 8 (its row alias is not MariaDB's).
            "attempts = :attempts, last_error = :error, "
            "next_attempt_at = NOW(6) + INTERVAL :delay_us MICROSECOND, failed = :failed"
        )
        params = [
            {
                **t.attempt_params,
                "row_id": str(f.row.row_id),
                "attempts": f.row.attempts + 1,
                "error": truncate_error(f.error),
                "delay_us": int(f.delay_seconds * 1_000_000),
                "failed": 1 if f.terminal else 0,
            }
            for f in failures
        ]
        conn.execute(sql, params)
        terminal = [f.row.row_id for f in failures if f.terminal]
        if terminal and t.statuses.failed is not None:
            run_with_lists(
                conn,
                f"UPDATE {t.by_primary_key} SET {t.status_col} = :failed WHERE {t.id_col} IN :ids",
                {"ids": terminal, "failed": t.statuses.failed},
            )

    def forget(self, conn: Connection, row_ids: Sequence[Any]) -> None:
        if not row_ids:
            return
        sql = expanding(
            f"DELETE FROM {ATTEMPT_TABLE} WHERE service = :service AND source_table = :tbl AND row_id IN :ids",
            "ids",
        )
        conn.execute(sql, {**self.table.attempt_params, "ids": [str(i) for i in row_ids]})

    @property
    def waiting_condition(self) -> str:
        t = self.table
        return _or_not_before(
            t,
            f"EXISTS (SELECT 1 FROM {ATTEMPT_TABLE} a WHERE a.service = :service AND a.source_table = :tbl "
            f"AND a.row_id = CAST({t.name}.{t.id_col} AS CHAR) AND a.failed = 0 AND a.next_attempt_at > NOW(6))",
        )

    def outside_states(self, conn: Connection, row_ids: Sequence[Any]) -> dict[str, OutsideState]:
        if not row_ids:
            return {}
        sql = expanding(
            f"SELECT row_id, attempts, last_error, next_attempt_at, failed FROM {ATTEMPT_TABLE} "
            "WHERE service = :service AND source_table = :tbl AND row_id IN :row_ids",
            "row_ids",
        )
        params = {**self.table.attempt_params, "row_ids": [str(r) for r in row_ids]}
        return {
            str(r[0]): (int(r[1]), None if r[2] is None else str(r[2]), r[3], bool(r[4]))
            for r in conn.execute(sql, params)
        }


def retry_state_for(table: OutboxTable) -> RetryState:
    if table.columns.inline_retry_state:
        return InlineRetryState(table)
    return AttemptTableRetryState(table)
