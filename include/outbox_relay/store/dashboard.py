"""The Outbox page's SQL: its FAILED / unconfirmed rows by filter, per-minute counts, one row's content
(the backlog figures it shows are ``store.figures``, shared with ``plan`` and the health check).

Every statement reads one index range and is bounded (``LIMIT``, or a one-hour time range on an indexed
column): the page must answer quickly on tables of millions of rows. Times are the database's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.models import ListedRow, RowContent, RowSearch
from outbox_relay.store.introspection import IndexHints
from outbox_relay.store.naming import ATTEMPT_TABLE, expanding
from outbox_relay.store.replay import kind_condition
from outbox_relay.store.retry_state import RetryState
from outbox_relay.store.table import OutboxTable

PREVIEW_CHARS = 2000  # a payload preview never shows more than this
TOP_ERRORS = 5
ERRORS_SAMPLED = 1000  # the most common errors are counted over the newest rows given up on
HELD_KEYS_COUNTED = 1000
MATCHES_COUNTED = 10_000  # "select all matching" counts this far, then says "more than"
KEY_SCAN_ROWS = 100_000  # a key search without an index on the key reads this many newest rows


class DashboardQueries:
    """The page's lists and its per-minute counts (its backlog figures are ``store.figures``)."""

    def __init__(self, table: OutboxTable, retry_state: RetryState, hints: IndexHints) -> None:
        self.table = table
        self.retry_state = retry_state
        self.hints = hints

    def index_hint(self, conn: Connection, *logical: str) -> str | None:
        """``FORCE INDEX (...)`` for an index starting with these logical columns, if the table has one."""
        return self.hints.hint(conn, [str(getattr(self.table.columns, f)) for f in logical])

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
        return int(conn.execute(sql, self.table.params(new=t.statuses.new, keys=waiting)).scalar() or 0)

    def top_errors(self, conn: Connection) -> list[tuple[str, int]]:
        """The most common errors of rows given up on, over the newest ``ERRORS_SAMPLED`` of them."""
        t = self.table
        if t.columns.inline_retry_state and t.statuses.failed is not None:
            error = t.column("last_error")
            failed = t.status_eq("failed", t.statuses.failed)
            source = (
                f"SELECT {error} AS e FROM {t.name} WHERE {failed}{t.row_filter} "
                f"ORDER BY {t.id_col} DESC LIMIT {ERRORS_SAMPLED}"
            )
        else:
            source = (
                f"SELECT last_error AS e FROM {ATTEMPT_TABLE} WHERE service = :service AND "
                f"source_table = :tbl AND failed = 1 LIMIT {ERRORS_SAMPLED}"
            )
        sql = text(
            f"SELECT LEFT(COALESCE(e, '(no error text)'), 300) AS msg, COUNT(*) AS n FROM ({source}) AS sampled "
            f"GROUP BY msg ORDER BY n DESC, msg LIMIT {TOP_ERRORS}"
        )
        return [(str(m), int(n)) for m, n in conn.execute(sql, self.table.params(failed=t.statuses.failed))]

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
        return {str(m): int(n) for m, n in conn.execute(sql, self.table.params(statuses=statuses))}

    def rows(self, conn: Connection, wanted: RowSearch, before: Any, limit: int) -> list[ListedRow]:
        """Up to ``limit`` FAILED (or unconfirmed) rows matching ``wanted``, newest first, with primary keys
        below ``before`` (None: from the newest): keyset paging over the (status, id) index."""
        t = self.table
        params = self.table.params(limit=limit)
        where = self._matching(wanted, params)
        if before is not None:
            where.append(f"{t.id_col} < :before")
            params["before"] = before
        sql = text(
            f"SELECT {self._listed_columns()} FROM {t.name} WHERE {' AND '.join(where)} "
            f"ORDER BY {t.id_col} DESC LIMIT :limit"
        )
        return self._listed(conn, conn.execute(sql, params).all())

    def count_matching(self, conn: Connection, wanted: RowSearch, up_to: int = MATCHES_COUNTED) -> int:
        """How many rows ``wanted`` matches, counted up to ``up_to`` (what "select all matching" would
        replay)."""
        t = self.table
        params = self.table.params(up_to=up_to)
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
        hint = None if name is None else self.hints.hint(conn, [name])
        params = self.table.params(key=key, limit=limit, scan=KEY_SCAN_ROWS)
        if hint is not None:
            sql = text(
                f"SELECT {columns} FROM {t.name} {hint} WHERE {key_sql} = :key{t.row_filter} "
                f"ORDER BY {t.id_col} DESC LIMIT :limit"
            )
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

    def _matching(self, wanted: RowSearch, params: dict[str, Any]) -> list[str]:
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

    def _filters(self, wanted: RowSearch, params: dict[str, Any]) -> list[str]:
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
        found = conn.execute(sql, self.table.params(id=row_id)).first()
        if found is None:
            return RowContent(None, None, None)
        return RowContent(
            None if found[0] is None else str(found[0]),
            None if found[1] is None else int(found[1]),
            None if found[2] is None else str(found[2]),
        )


def _like_escaped(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
