"""The Outbox page's SQL: a service's figures, its FAILED / unconfirmed rows by filter, one row's content.

Every statement reads one index range and is bounded (``LIMIT``, or a one-hour time range on an indexed
column): the page must answer quickly on tables of millions of rows. Times are the database's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.store.introspection import indexes
from outbox_relay.store.naming import ATTEMPT_TABLE, expanding, quote
from outbox_relay.store.replay import FAILED, kind_condition
from outbox_relay.store.retry_state import RetryState
from outbox_relay.store.table import OutboxTable
from outbox_relay.store.watch import ready_now

PREVIEW_CHARS = 2000  # a payload preview never shows more than this
TOP_ERRORS = 5
ERRORS_SAMPLED = 1000  # the most common errors are counted over the newest rows given up on
HELD_KEYS_COUNTED = 1000
MATCHES_COUNTED = 10_000  # "select all matching" counts this far, then says "more than"
KEY_SCAN_ROWS = 100_000  # a key search without an index on the key reads this many newest rows


@dataclass(frozen=True)
class RowFilter:
    """Which FAILED or unconfirmed rows a list shows; every given criterion must hold."""

    kind: str = FAILED  # FAILED or UNCONFIRMED
    created_from: datetime | None = None
    created_until: datetime | None = None
    key: str | None = None
    event_type: str | None = None
    error_text: str | None = None


@dataclass(frozen=True)
class ListedRow:
    row_id: Any
    message_id: str
    key: Any
    event_type: Any
    created_at: Any
    attempts: Any
    last_error: Any
    status: Any = None  # only where a list mixes statuses (a key's rows)


@dataclass(frozen=True)
class RowContent:
    payload_preview: str | None  # at most PREVIEW_CHARS characters
    payload_chars: int | None  # the whole payload's length
    headers: str | None


class DashboardQueries:
    def __init__(self, table: OutboxTable, retry_state: RetryState) -> None:
        self.table = table
        self.retry_state = retry_state
        self._indexes: dict[str, list[str]] | None = None

    def index_hint(self, conn: Connection, *logical: str) -> str | None:
        """``FORCE INDEX (...)`` for an index starting with these columns, if the table has one. The
        optimizer otherwise walks the primary key for ``ORDER BY id LIMIT 1`` or reads the whole table
        when the wanted statuses are most rows, both far slower on a big table."""
        return self._hint_for(conn, [str(getattr(self.table.columns, f)) for f in logical])

    def _hint_for(self, conn: Connection, columns: list[str]) -> str | None:
        """``_hint`` for an index starting with these (physical) columns."""
        if self._indexes is None:
            self._indexes = indexes(conn, self.table.config.table)
        wanted = [c.lower() for c in columns]
        found = next((n for n, cols in self._indexes.items() if cols[: len(wanted)] == wanted), None)
        return None if found is None else f"FORCE INDEX ({quote(found)})"

    def _params(self, **extra: Any) -> dict[str, Any]:
        return {**self.table.filter_params, **self.table.attempt_params, **extra}

    def by_status(self, conn: Connection) -> dict[str, int]:
        """Rows per stored status (one pass over the (status, id) index)."""
        t = self.table
        sql = text(f"SELECT {t.status_col}, COUNT(*) FROM {t.name} WHERE 1 = 1{t.row_filter} GROUP BY 1")
        return {str(s): int(n) for s, n in conn.execute(sql, self._params())}

    def count(self, conn: Connection, status: Any, up_to: int) -> int:
        """Rows of ``status``, counted up to ``up_to`` (one bounded range of the (status, id) index)."""
        t = self.table
        sql = text(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {t.name} WHERE {t.status_eq('status', status)}{t.row_filter} "
            f"LIMIT {int(up_to)}) AS counted"
        )
        return int(conn.execute(sql, self._params(status=status)).scalar() or 0)

    def given_up_new(self, conn: Connection) -> int:
        """NEW rows given up on (tables whose failed status is null keep that in the attempt table)."""
        if self.table.statuses.failed is not None:
            return 0
        sql = text(f"SELECT COUNT(*) FROM {ATTEMPT_TABLE} WHERE service = :service AND source_table = :tbl "
                   "AND failed = 1")  # fmt: skip
        return int(conn.execute(sql, self._params()).scalar() or 0)

    def oldest_age_seconds(self, conn: Connection, status: Any, eligible_only: bool = False) -> int | None:
        """Seconds since the first row of ``status`` in claim order (the primary key, or ``order_by``) was
        created (``eligible_only``: the first NEW row neither waiting for a retry nor given up, i.e. the
        next one the relay sends): one step into the (status, claim order) index, however big the
        backlog. None without a creation time."""
        t = self.table
        created = t.as_datetime("created_at")
        if created is None:
            return None
        where = f"{t.status_eq('status', status)}{t.row_filter}"
        if eligible_only:
            where += ready_now(self.retry_state)
        order = list(t.config.scan_index)
        hint = "" if t.config.row_filter or order == [t.columns.id] else (self._hint_for(conn, order) or "")
        sql = text(
            f"SELECT TIMESTAMPDIFF(SECOND, {created}, NOW(6)) FROM {t.name} {hint} WHERE {where} "
            f"ORDER BY {t.order_sql} LIMIT 1"
        )
        value = conn.execute(sql, self._params(status=status)).scalar()
        return None if value is None else int(value)

    def held_back(self, conn: Connection) -> int:
        """NEW rows of keys that have a row waiting for its retry (those rows included): they wait."""
        t = self.table
        key = t.column("key")
        if key is None:
            return 0
        waiting = sorted(self.retry_state.waiting_keys(conn, key), key=str)[:HELD_KEYS_COUNTED]
        if not waiting:
            return 0
        sql = expanding(
            f"SELECT COUNT(*) FROM {t.name} WHERE {t.status_eq('new', t.statuses.new)}{t.row_filter} "
            f"AND {key} IN :keys",
            "keys",
        )
        return int(conn.execute(sql, self._params(new=t.statuses.new, keys=waiting)).scalar() or 0)

    def top_errors(self, conn: Connection) -> list[tuple[str, int]]:
        """The most common errors of rows given up on, over the newest ``ERRORS_SAMPLED`` of them."""
        t = self.table
        if t.columns.inline_retry_state and t.statuses.failed is not None:
            error = t.column("last_error")
            failed = t.status_eq("failed", t.statuses.failed)
            source = (f"SELECT {error} AS e FROM {t.name} WHERE {failed}{t.row_filter} "
                      f"ORDER BY {t.id_col} DESC LIMIT {ERRORS_SAMPLED}")  # fmt: skip
        else:
            source = (f"SELECT last_error AS e FROM {ATTEMPT_TABLE} WHERE service = :service AND "
                      f"source_table = :tbl AND failed = 1 LIMIT {ERRORS_SAMPLED}")  # fmt: skip
        sql = text(
            f"SELECT LEFT(COALESCE(e, '(no error text)'), 300) AS msg, COUNT(*) AS n FROM ({source}) AS sampled "
            f"GROUP BY msg ORDER BY n DESC, msg LIMIT {TOP_ERRORS}"
        )
        return [(str(m), int(n)) for m, n in conn.execute(sql, self._params(failed=t.statuses.failed))]

    def per_minute(self, conn: Connection, logical: str, statuses: list[Any]) -> dict[str, int] | None:
        """Rows per minute of ``logical`` (sent_at / confirmed_at) over the last hour, among rows of
        ``statuses``, read through an index on (status, updated_at) (a row's update time is never before
        its send or confirmation). None when the column is not mapped or the table has no such index:
        without it the count would read the whole table."""
        t = self.table
        column, updated = t.column(logical), t.column("updated_at")
        hint = None if column is None or updated is None else self.index_hint(conn, "status", "updated_at")
        if hint is None:
            return None
        sql = expanding(
            f"SELECT DATE_FORMAT({column}, '%Y-%m-%d %H:%i') AS minute, COUNT(*) FROM {t.name} "
            f"{hint} WHERE {t.status_in('statuses', statuses)}{t.row_filter} "
            f"AND {updated} >= NOW(6) - INTERVAL 1 HOUR AND {column} >= NOW(6) - INTERVAL 1 HOUR "
            "GROUP BY minute ORDER BY minute",
            "statuses",
        )
        return {str(m): int(n) for m, n in conn.execute(sql, self._params(statuses=statuses))}

    def rows(self, conn: Connection, wanted: RowFilter, before: Any, limit: int) -> list[ListedRow]:
        """Up to ``limit`` FAILED (or unconfirmed) rows matching ``wanted``, newest first, with primary keys
        below ``before`` (None: from the newest): keyset paging over the (status, id) index."""
        t = self.table
        params = self._params(limit=limit)
        where = self._matching(wanted, params)
        if before is not None:
            where.append(f"{t.id_col} < :before")
            params["before"] = before
        sql = text(
            f"SELECT {self._listed_columns()} FROM {t.name} WHERE {' AND '.join(where)} "
            f"ORDER BY {t.id_col} DESC LIMIT :limit"
        )
        return self._listed(conn, conn.execute(sql, params).all())

    def count_matching(self, conn: Connection, wanted: RowFilter, up_to: int = MATCHES_COUNTED) -> int:
        """How many rows ``wanted`` matches, counted up to ``up_to`` (what "select all matching" would
        replay)."""
        t = self.table
        params = self._params(up_to=up_to)
        sql = text(
            f"SELECT COUNT(*) FROM (SELECT 1 FROM {t.name} WHERE {' AND '.join(self._matching(wanted, params))} "
            "LIMIT :up_to) AS matched"
        )
        return int(conn.execute(sql, params).scalar() or 0)

    def rows_of_key(self, conn: Connection, key: str, limit: int) -> tuple[list[ListedRow], int | None]:
        """The newest ``limit`` rows of ``key``, whatever their status, and how many newest rows were read
        to find them: None through an index starting with the key column, else ``KEY_SCAN_ROWS`` (a table
        of millions is never read whole for the page)."""
        t = self.table
        key_sql = t.column("key")
        if key_sql is None:
            return [], None
        columns = f"{self._listed_columns()}, {t.status_col} AS l_status"
        name = t.columns.key if t.config.json_values.values().get("key") is None else None
        hint = None if name is None else self._hint_for(conn, [name])
        params = self._params(key=key, limit=limit, scan=KEY_SCAN_ROWS)
        if hint is not None:
            sql = text(f"SELECT {columns} FROM {t.name} {hint} WHERE {key_sql} = :key{t.row_filter} "
                       f"ORDER BY {t.id_col} DESC LIMIT :limit")  # fmt: skip
        else:
            sql = text(
                f"SELECT * FROM (SELECT {columns}, {key_sql} AS searched_key FROM {t.name} "
                f"WHERE 1 = 1{t.row_filter} ORDER BY {t.id_col} DESC LIMIT :scan) AS newest "
                "WHERE searched_key = :key ORDER BY l0 DESC LIMIT :limit"
            )
        records = conn.execute(sql, params).all()
        listed = [
            replace(r, status=record.l_status)
            for r, record in zip(self._listed(conn, records), records, strict=True)
        ]
        return listed, None if hint is not None else KEY_SCAN_ROWS

    def _matching(self, wanted: RowFilter, params: dict[str, Any]) -> list[str]:
        kind = kind_condition(self.table, self.retry_state, frozenset({wanted.kind}), params)
        return [kind + self.table.row_filter, *self._filters(wanted, params)]

    def _listed_columns(self) -> str:
        t = self.table
        optional = ("message_id", "key", "event_type", "created_at", "attempts", "last_error")
        columns = [t.id_col] + [t.as_datetime(f) or "NULL" for f in optional]
        return ", ".join(f"{c} AS l{i}" for i, c in enumerate(columns))  # named: also read from a subquery

    def _listed(self, conn: Connection, records: Sequence[Any]) -> list[ListedRow]:
        """``ListedRow``s from records of ``_listed_columns``, with retry state kept outside the table."""
        t = self.table
        outside = self.retry_state.outside_states(conn, [r[0] for r in records])
        listed = []
        for r in records:
            state = outside.get(str(r[0]))
            attempts, error = (r[5], r[6]) if state is None else (state[0], state[1])
            listed.append(ListedRow(r[0], t.message_id_for(r[0], r[1]), r[2], r[3], r[4], attempts, error))
        return listed

    def _filters(self, wanted: RowFilter, params: dict[str, Any]) -> list[str]:
        t = self.table
        where = []
        for logical, value in (("key", wanted.key), ("event_type", wanted.event_type)):
            if value and t.column(logical):
                where.append(f"{t.column(logical)} = :{logical}")
                params[logical] = value
        for name, op, moment in (
            ("c_from", ">=", wanted.created_from),
            ("c_until", "<", wanted.created_until),
        ):
            if moment is not None and t.column("created_at"):
                where.append(t.created(op, f":{name}"))
                params[name] = moment
        if wanted.error_text and t.column("last_error"):
            where.append(f"{t.column('last_error')} LIKE :error_text")
            params["error_text"] = f"%{_like_escaped(wanted.error_text)}%"
        return where

    def content(self, conn: Connection, row_id: Any) -> RowContent:
        """The start of a row's payload and its headers column."""
        t = self.table
        payload, headers = t.column("payload"), t.column("headers")
        select = [
            f"LEFT({payload}, {PREVIEW_CHARS})" if payload else "NULL",
            f"CHAR_LENGTH({payload})" if payload else "NULL",
            f"LEFT({headers}, {PREVIEW_CHARS})" if headers else "NULL",
        ]
        sql = text(f"SELECT {', '.join(select)} FROM {t.name} WHERE {t.id_col} = :id{t.row_filter}")
        found = conn.execute(sql, self._params(id=row_id)).first()
        if found is None:
            return RowContent(None, None, None)
        return RowContent(
            None if found[0] is None else str(found[0]), None if found[1] is None else int(found[1]),
            None if found[2] is None else str(found[2]),
        )  # fmt: skip


def _like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
