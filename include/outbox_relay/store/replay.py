"""Replay SQL: find FAILED / SENT-unconfirmed rows by filter, requeue them, and the append-only
replay history (``outbox_relay_replay``; ``outbox-relay ddl`` prints its DDL) that records every row a
replay or a backfill republish touched. Every selection is ordered by primary key and bounded."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError

from outbox_relay.models import Failure, OutboxRow
from outbox_relay.store.mysql_errors import is_missing_table
from outbox_relay.store.naming import REPLAY_TABLE, expanding, run_with_lists, truncate_error
from outbox_relay.store.retry_state import OutsideState, RetryState
from outbox_relay.store.table import OutboxTable

FAILED, UNCONFIRMED, DEAD_LETTER = "failed", "unconfirmed", "dead_letter"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayFilter:
    """Which rows a replay may touch; every given criterion must hold (an empty one is not applied)."""

    kinds: frozenset[str]  # FAILED and/or UNCONFIRMED
    row_ids: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()
    key: str | None = None
    event_type: str | None = None
    created_from: datetime | None = None
    created_until: datetime | None = None


@dataclass(frozen=True)
class ReplayCandidate:
    row_id: Any
    message_id: str
    kind: str  # FAILED or UNCONFIRMED
    key: Any
    status: Any
    attempts: int | None
    last_error: str | None
    run_id: str | None
    topic: str | None = None  # the row's own topic column (None: the service's topic)
    created_at: Any = None  # None without a creation time


@dataclass(frozen=True)
class ReplayAudit:
    """Who asked for a replay, why, and the run (Airflow run id or CLI invocation) that carried it out."""

    requested_by: str
    reason: str
    run_id: str


@dataclass(frozen=True)
class ReplayEntry:
    action: str
    previous_status: str | None
    previous_error: str | None
    previous_run_id: str | None
    requested_by: str
    reason: str
    run_id: str
    at: datetime


_OPTIONAL = ("message_id", "key", "attempts", "last_error", "run_id", "topic")


def kind_condition(
    table: OutboxTable, retry_state: RetryState, kinds: frozenset[str], params: dict[str, Any]
) -> str:
    """A WHERE fragment for rows of the given kinds: FAILED (or, where FAILED rows keep the NEW status,
    NEW rows given up on) and/or UNCONFIRMED (SENT); fills in ``params``."""
    t = table
    parts = []
    if FAILED in kinds:
        if t.statuses.failed is not None:
            parts.append(t.status_eq("st_failed", t.statuses.failed))
            params["st_failed"] = t.statuses.failed
        else:  # given up on, still NEW: marked only in the attempt table
            parts.append(f"({t.status_eq('st_new', t.statuses.new)} {retry_state.given_up})")
            params["st_new"] = t.statuses.new
    if UNCONFIRMED in kinds:
        parts.append(t.status_eq("st_sent", t.statuses.sent))
        params["st_sent"] = t.statuses.sent
    return "(" + " OR ".join(parts) + ")"


class ReplayQueries:
    def __init__(self, table: OutboxTable, retry_state: RetryState) -> None:
        self.table = table
        self.retry_state = retry_state
        t = table
        select = [f"{t.id_col} AS r_id", f"{t.status_col} AS r_status"]
        select += [f"{t.column(f)} AS f_{f}" for f in _OPTIONAL if t.column(f)]
        created = t.as_datetime("created_at")
        select += [f"{created} AS f_created"] if created else []
        self._select = ", ".join(select)

    def candidates(self, conn: Connection, wanted: ReplayFilter, limit: int) -> list[ReplayCandidate]:
        """Up to ``limit`` matching rows in primary-key order, locked (``FOR UPDATE``) when the caller's
        transaction goes on to change them."""
        t = self.table
        params: dict[str, Any] = {**t.attempt_params, **t.filter_params, "limit": limit}
        where = [kind_condition(t, self.retry_state, wanted.kinds, params) + t.row_filter]
        lists = []
        if wanted.row_ids:
            where.append(f"{t.id_col} IN :row_ids")
            params["row_ids"], lists = list(wanted.row_ids), ["row_ids"]
        if wanted.message_ids:
            derived = [t.row_id_from_message_id(m) for m in wanted.message_ids]
            if t.stores_message_ids:
                where.append(f"{t.column('message_id')} IN :message_ids")
                params["message_ids"] = list(wanted.message_ids)
            else:
                where.append(f"{t.id_col} IN :message_ids")
                params["message_ids"] = [d for d in derived if d is not None] or [None]
            lists.append("message_ids")
        for logical, value in (("key", wanted.key), ("event_type", wanted.event_type)):
            if value is not None:
                where.append(f"{t.column(logical)} = :{logical}")
                params[logical] = value
        for bound, op, moment in (
            ("c_from", ">=", wanted.created_from),
            ("c_until", "<", wanted.created_until),
        ):
            if moment is not None:
                where.append(t.created(op, f":{bound}"))
                params[bound] = moment
        sql = expanding(
            f"SELECT {self._select} FROM {t.name} WHERE {' AND '.join(where)} "
            f"ORDER BY {t.id_col} LIMIT :limit FOR UPDATE",
            *lists,
        )
        records = conn.execute(sql, params).mappings().all()
        outside = self.retry_state.outside_states(conn, [r["r_id"] for r in records])
        return [self._candidate(r, outside.get(str(r["r_id"]))) for r in records]

    def _candidate(self, r: Any, outside: OutsideState | None) -> ReplayCandidate:
        t = self.table
        status = r["r_status"]
        kind = UNCONFIRMED if status == t.statuses.sent else FAILED
        attempts, error = r.get("f_attempts"), r.get("f_last_error")
        if outside is not None:
            attempts, error = outside[0], outside[1]
        return ReplayCandidate(
            r["r_id"],
            t.message_id_for(r["r_id"], r.get("f_message_id")),
            kind,
            r.get("f_key"),
            status,
            None if attempts is None else int(attempts),
            error,
            r.get("f_run_id"),
            r.get("f_topic") or t.config.topic,
            r.get("f_created"),
        )

    def older_unpublished(self, conn: Connection, rows: Sequence[ReplayCandidate]) -> dict[Any, Any]:
        """For the keys of ``rows``: the oldest row id of the key still waiting to be published (NEW and
        not given up). A row republished past it would overtake it on the topic."""
        key = self.table.column("key")
        keys = list({r.key for r in rows if r.key is not None})
        if key is None or not keys:
            return {}
        t = self.table
        sql = expanding(
            f"SELECT {key} AS k, MIN({t.id_col}) AS first_id FROM {t.name} WHERE {key} IN :keys "
            f"AND {t.status_eq('new', t.statuses.new)}{t.row_filter}{self.retry_state.not_given_up} GROUP BY {key}",
            "keys",
        )
        params = {"keys": keys, "new": t.statuses.new, **t.attempt_params, **t.filter_params}
        return {r.k: r.first_id for r in conn.execute(sql, params)}

    def requeue(self, conn: Connection, rows: Sequence[ReplayCandidate], audit: ReplayAudit) -> int:
        """FAILED (or given-up) rows back to NEW with a fresh attempt budget; their last error and attempt
        count go to the history first. The rows must be locked by :meth:`candidates` in this transaction."""
        if not rows:
            return 0
        self._record(conn, "requeue", [(r.row_id, r.message_id, r.status, r.attempts, r.last_error, r.run_id)
                                       for r in rows], audit)  # fmt: skip
        t = self.table
        ids = [r.row_id for r in rows]
        if t.statuses.failed is not None:
            sets = t.set_clause(
                "new", [("attempts", "0"), ("last_error", "NULL"), ("next_attempt_at", "NULL")]
            )
            run_with_lists(
                conn,
                f"UPDATE {t.by_primary_key} SET {sets} WHERE {t.id_col} IN :ids AND "
                f"{t.status_eq('failed', t.statuses.failed)}",
                {"ids": list(ids), "new": t.statuses.new, "failed": t.statuses.failed},
            )
        self.retry_state.forget(conn, ids)
        return len(rows)

    def record_republished(self, conn: Connection, rows: Sequence[OutboxRow], audit: ReplayAudit) -> None:
        """SENT rows the broker acknowledged again: history only; the row (and its run id, copied to the
        history as the run that first sent it) stays as it was."""
        first_runs = self._run_ids(conn, [r.row_id for r in rows])
        self._record(conn, "republish", [(r.row_id, r.message_id, r.status, r.attempts, None,
                                          first_runs.get(str(r.row_id))) for r in rows], audit)  # fmt: skip

    def _run_ids(self, conn: Connection, row_ids: list[Any]) -> dict[str, str | None]:
        """The ``relay_run_id`` of each row (none when the table maps no run id column)."""
        t = self.table
        run_id = t.column("run_id")
        if run_id is None or not row_ids:
            return {}
        sql = f"SELECT {t.id_col}, {run_id} FROM {t.name} WHERE {t.id_col} IN :ids"
        return {str(row[0]): row[1] for row in run_with_lists(conn, sql, {"ids": list(row_ids)})}

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
                audit = ReplayAudit(
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
                self._record(conn, "gave_up" if f.terminal else "attempt", [row], audit)
        except ProgrammingError as exc:
            if not is_missing_table(exc):
                raise
            log.warning("%s is missing (create it: outbox-relay ddl --shared-only --apply): failed attempts are not "
                        "recorded in the row history", REPLAY_TABLE)  # fmt: skip

    def record_dead_letters(
        self, conn: Connection, copies: Sequence[tuple[str, str, str | None]], audit: ReplayAudit
    ) -> None:
        """Dead-letter copies published to their original topic again: (row id, message id, error)."""
        self._record(conn, DEAD_LETTER, [(r, m, None, None, e, None) for r, m, e in copies], audit)

    def _record(self, conn: Connection, action: str, rows: list[tuple[Any, ...]], audit: ReplayAudit) -> None:
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
                    "by": audit.requested_by[:250],
                    "reason": audit.reason[:1000],
                    "run_id": audit.run_id[:250],
                }
                for row_id, message_id, status, attempts, error, run_id in rows
            ],
        )

    def history(self, conn: Connection, row_id: Any, limit: int = 50) -> list[ReplayEntry]:
        """A row's replays, oldest first (primary-key lookups on the history's row index)."""
        sql = text(
            "SELECT action, previous_status, previous_error, previous_run_id, requested_by, reason, run_id, "
            f"created_at FROM {REPLAY_TABLE} WHERE service = :service AND source_table = :tbl "
            "AND row_id = :row_id ORDER BY id LIMIT :limit"
        )
        params = {**self.table.attempt_params, "row_id": str(row_id), "limit": limit}
        return [ReplayEntry(*r) for r in conn.execute(sql, params)]
