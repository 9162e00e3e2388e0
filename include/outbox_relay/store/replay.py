"""Replay SQL: find FAILED / SENT-unconfirmed rows by filter and requeue them (each requeue goes to the
row history, ``store.history``, first). Every selection is ordered by primary key and bounded."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from outbox_relay.models import (
    FAILED,
    UNCONFIRMED,
    HistoryEntry,
    ReplayCandidate,
    ReplayFilter,
)
from outbox_relay.store.history import RowHistory
from outbox_relay.store.naming import expanding, run_with_lists
from outbox_relay.store.retry_state import OutsideState, RetryState
from outbox_relay.store.sent_ranges import SentRanges
from outbox_relay.store.table import OutboxTable

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
    """Rows a replay may touch, and their requeue (recorded in the row history first)."""

    def __init__(
        self, table: OutboxTable, retry_state: RetryState, history: RowHistory, sent_ranges: SentRanges
    ) -> None:
        self.table = table
        self.retry_state = retry_state
        self.history = history
        self.sent_ranges = sent_ranges
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
        runs = self.sent_ranges.run_ids(conn, [r["r_id"] for r in records if r.get("f_run_id") is None])
        return [self._candidate(r, outside.get(str(r["r_id"])), runs) for r in records]

    def _candidate(self, r: Any, outside: OutsideState | None, runs: dict[str, str]) -> ReplayCandidate:
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
            r.get("f_run_id") or runs.get(str(r["r_id"])),
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

    def requeue(self, conn: Connection, rows: Sequence[ReplayCandidate], entry: HistoryEntry) -> int:
        """FAILED (or given-up) rows back to NEW with a fresh attempt budget; their last error and attempt
        count go to the history first. The rows must be locked by :meth:`candidates` in this transaction."""
        if not rows:
            return 0
        self.history.record(
            conn,
            "requeue",
            [(r.row_id, r.message_id, r.status, r.attempts, r.last_error, r.run_id) for r in rows],
            entry,
        )
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
