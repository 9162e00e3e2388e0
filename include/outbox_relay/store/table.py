"""One service's outbox table as SQL fragments: quoted names, its row filter, message ids, cursor start.

Every store module builds its statements from these, so a table's naming lives in one place. Every
identifier comes from a validated config and is quoted; values are always bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.config import ServiceConfig, StatusValue
from outbox_relay.errors import MissingConfigurationError
from outbox_relay.store.introspection import column_types
from outbox_relay.store.naming import quote

JSON_VALID = "JSON_VALID"  # the server's function; tests put a stand-in for MySQL's behaviour here


def _json_sql(doc: str, paths: tuple[str, ...], unquote: bool) -> str:
    """A value inside the JSON column ``doc`` (quoted; NULL where the document is not JSON, which MySQL
    would otherwise answer with an error failing the whole statement). As text (``unquote``: a key, an id)
    it is the first of ``paths`` present and not JSON null; as JSON (a body, headers) the value at the one
    path. Paths are validated (``check_json_path``: no quotes), so they are safe inside string literals."""
    if not unquote:
        return f"IF({JSON_VALID}({doc}), JSON_EXTRACT({doc}, '{paths[0]}'), NULL)"
    tried = [
        f"IF(JSON_TYPE(JSON_EXTRACT({doc}, '{p}')) = 'NULL', NULL, JSON_UNQUOTE(JSON_EXTRACT({doc}, '{p}')))"
        for p in paths
    ]
    value = tried[0] if len(tried) == 1 else f"COALESCE({', '.join(tried)})"
    return f"IF({JSON_VALID}({doc}), {value}, NULL)"


@dataclass(frozen=True)
class JsonSource:
    """Where a claimed field is read from inside a JSON column: the quoted column, the paths tried in order,
    and whether the value is wanted as text (a key, an id) rather than as JSON (a body, headers)."""

    column: str
    paths: tuple[str, ...]
    unquote: bool


EPOCH_FACTORS = {"epoch_s": 1, "epoch_ms": 1000}  # created_at_unit -> units per second


class OutboxTable:
    """Built once per service from its config; holds no connection."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.columns = config.columns
        self.statuses = config.statuses
        self.name = quote(config.table)
        self.id_col = quote(self.columns.id)
        # A table without a status column reads NEW/SENT from the row itself: ``status_col`` is then a
        # read-only expression (SELECT, GROUP BY); filters go through ``status_eq``/``status_in``.
        self.has_status = self.columns.status is not None
        self.status_col = quote(self.columns.status) if self.columns.status else self._virtual_status()
        self.message_prefix = f"{config.service}:{config.table}:"
        # Several services sharing one table (row_filter) each see only their own rows.
        rf = config.row_filter
        self.row_filter = self.row_filter_on(self.name)
        self.filter_params: dict[str, Any] = {} if rf is None else {"row_filter": rf.equals}
        # :service and :tbl: which rows of the attempt table (outbox_relay_attempt) are this service's.
        self.attempt_params: dict[str, Any] = {"service": config.service, "tbl": config.table}
        self.lock_key = config.table if rf is None else f"{config.table}:{rf.equals}"
        # The table holds each row's message id (a column or a JSON value); else it is derived. Read per
        # claimed row (``message_id_for``), so worked out once here.
        self.stores_message_ids = self.column("message_id") is not None
        self._cursor_start: Any = None

    def params(self, **extra: Any) -> dict[str, Any]:
        """The bound values every statement on the table may use (its row filter, its rows of the attempt
        table), with ``extra``."""
        return {**self.filter_params, **self.attempt_params, **extra}

    def row_filter_on(self, qualifier: str) -> str:
        """``AND <qualifier>.<filter column> = :row_filter``, or nothing for a table of one service."""
        rf = self.config.row_filter
        return "" if rf is None else f" AND {qualifier}.{quote(rf.column)} = :row_filter"

    def column(self, logical: str) -> str | None:
        """The quoted column mapped to a logical field, or None when the table has none. A field read from
        JSON (``json_values``) is the SQL expression reading it, usable wherever the column would be."""
        return self.column_on(None, logical)

    def column_on(self, qualifier: str | None, logical: str) -> str | None:
        """``column`` with its column(s) qualified by a table alias (for joins)."""
        found = self.config.json_values.values().get(logical)
        name = getattr(self.columns, found[0].column if found is not None else logical)
        if name is None:
            return None
        column = quote(name) if qualifier is None else f"{qualifier}.{quote(name)}"
        return column if found is None else _json_sql(column, tuple(v.path for v in found), unquote=True)

    def claim_column(self, logical: str, extract_in_sql: bool = True) -> str | None:
        """What the claim reads for a field: the body and headers may be paths inside the payload
        (``json_values.body`` / ``.headers``); everything else as ``column``. Without
        ``extract_in_sql`` a field read from JSON is its whole JSON column (the relay extracts it)."""
        source = self.json_source(logical)
        if source is None:
            return self.column(logical)
        return _json_sql(source.column, source.paths, source.unquote) if extract_in_sql else source.column

    def json_source(self, logical: str) -> JsonSource | None:
        """Where the claim reads a field from inside JSON (``json_values``), or None for a plain column."""
        jv = self.config.json_values
        path = {"payload": jv.body, "headers": jv.headers}.get(logical)
        if path is not None and self.columns.payload is not None:
            return JsonSource(quote(self.columns.payload), (path,), unquote=False)
        found = jv.values().get(logical)
        name = None if found is None else getattr(self.columns, found[0].column)
        if found is None or name is None:
            return None
        return JsonSource(quote(name), tuple(v.path for v in found), unquote=True)

    def _virtual_status(self) -> str:
        """The status a status-less row has: NEW while it exists (delete, archive), or by its completion
        time (timestamp)."""
        sent_at = self.column("sent_at")
        if self.config.completion != "timestamp" or sent_at is None:
            return f"'{self.statuses.new}'"
        return f"IF({sent_at} IS NULL, '{self.statuses.new}', '{self.statuses.sent}')"

    def status_eq(self, param: str, value: StatusValue | None, qualifier: str | None = None) -> str:
        """``status = :param``; for a status-less table the predicate that stands for ``value`` (the
        parameter is then unused), index-friendly: ``sent_at IS NULL`` rather than an expression."""
        return self.status_in(param, [value], qualifier, expanding=False)

    def status_in(
        self,
        param: str,
        values: Sequence[StatusValue | None],
        qualifier: str | None = None,
        expanding: bool = True,
    ) -> str:
        """``status IN :param`` (an expanding parameter holding ``values``), or its status-less stand-in."""
        if self.columns.status is not None:
            column = self.status_col if qualifier is None else f"{qualifier}.{self.status_col}"
            return f"{column} IN :{param}" if expanding else f"{column} = :{param}"
        pending, sent = self.statuses.new in values, self.statuses.sent in values
        if pending and sent:
            return "1 = 1"
        sent_at = self.column_on(qualifier, "sent_at") if self.config.completion == "timestamp" else None
        if pending:
            return "1 = 1" if sent_at is None else f"{sent_at} IS NULL"
        if sent and sent_at is not None:
            return f"{sent_at} IS NOT NULL"
        return "1 = 0"

    def set_clause(self, status_param: str, optional: Sequence[tuple[str, str]]) -> str:
        """``status = :param`` plus each optional assignment whose logical column is mapped (no status
        assignment for a status-less table)."""
        sets = [f"{self.status_col} = :{status_param}"] if self.has_status else []
        for logical, value in optional:
            column = self.column(logical)
            if column:
                sets.append(f"{column} = {value}")
        return ", ".join(sets)

    @property
    def by_primary_key(self) -> str:
        """The table for UPDATEs of claimed rows. Forcing the primary key keeps the statement from scanning
        the (status, id) index, whose neighbouring entries belong to batches that other connections of the
        same pipelined run hold locked: it would wait for them while they wait for it. (MariaDB has no
        index hints for single-table DELETE; retention's deletes by id use the primary key anyway.)"""
        return f"{self.name} FORCE INDEX (PRIMARY)"

    @property
    def shard_of_row(self) -> str:
        """A row's shard: CRC32 of its key mod ``shards`` (a NULL key: shard 0, which fails the row)."""
        key = self.column("key")
        assert key is not None, "validated by ServiceConfig: shards need a key"
        return f"(COALESCE(CRC32({key}), 0) % {int(self.config.shards)})"

    @property
    def row_shard(self) -> str:
        """What a shard's claim compares with its number: the mapped shard column (indexed, checked against
        ``shard_of_row`` by the first claim of a run), else ``shard_of_row`` itself."""
        shard = self.config.columns.shard
        return self.shard_of_row if shard is None else quote(shard)

    @property
    def ordered(self) -> bool:
        """Rows are claimed in ``order_by`` order, not by primary key alone."""
        return len(self.config.claim_order) > 1

    @property
    def order_sql(self) -> str:
        return ", ".join(quote(c) for c in self.config.claim_order)

    @property
    def order_sql_desc(self) -> str:
        return ", ".join(f"{quote(c)} DESC" for c in self.config.claim_order)

    def after(self) -> str:
        """Rows after the cursor in claim order (keyset paging). By primary key: ``id > :after``; with
        ``order_by`` the row-value comparison written out (``c > :after_0 OR (c = :after_0 AND id >
        :after_1)``), and ``:started = 0`` for the first batch."""
        cols = [quote(c) for c in self.config.claim_order]
        if len(cols) == 1:
            return f"{cols[0]} > :after"
        alternatives = []
        for n, col in enumerate(cols):
            equal = [f"{cols[i]} = :after_{i}" for i in range(n)]
            alternatives.append("(" + " AND ".join([*equal, f"{col} > :after_{n}"]) + ")")
        return f"(:started = 0 OR {' OR '.join(alternatives)})"

    def after_params(self, cursor: Any) -> dict[str, Any]:
        if not self.ordered:
            return {"after": cursor}
        values = tuple(cursor) if cursor is not None else (None,) * len(self.config.claim_order)
        return {"started": int(cursor is not None), **{f"after_{i}": v for i, v in enumerate(values)}}

    def as_stored(self, logical: str, moment: str) -> str:
        """``moment`` (a DATETIME expression or parameter) in the unit the column of ``logical`` stores, for
        comparisons that keep its index usable: ``UNIX_TIMESTAMP(moment) * 1000`` for epoch milliseconds.
        Only ``created_at`` may hold epoch times (``created_at_unit``)."""
        factor = self._epoch_factor(logical)
        return moment if factor is None else f"(UNIX_TIMESTAMP({moment}) * {factor})"

    def as_datetime(self, logical: str) -> str | None:
        """The column of ``logical`` read as a DATETIME in the session time zone (None when unmapped)."""
        column, factor = self.column(logical), self._epoch_factor(logical)
        if column is None or factor is None:
            return column
        return f"FROM_UNIXTIME({column} / {factor})"

    def _epoch_factor(self, logical: str) -> int | None:
        """Units per second of an epoch time column (only ``created_at`` may be one); None for DATETIME."""
        return EPOCH_FACTORS.get(self.config.created_at_unit) if logical == "created_at" else None

    def created(self, op: str, moment: str) -> str:
        """``created_at <op> moment`` in the column's own unit (index-friendly); ``moment`` a DATETIME
        expression or parameter in the DB time zone."""
        created = self.column("created_at")
        assert created is not None, "callers check that columns.created_at is mapped"
        return f"{created} {op} {self.as_stored('created_at', moment)}"

    def older_than(self, age_param: str) -> str:
        """Rows last updated (or, without updated_at, created) more than ``:age_param`` seconds ago."""
        logical = "updated_at" if self.column("updated_at") else "created_at"
        age = self.column(logical)
        assert age is not None, "validated by ServiceConfig"
        return f"{age} < {self.as_stored(logical, f'NOW(6) - INTERVAL :{age_param} SECOND')}"

    @property
    def open_statuses(self) -> list[StatusValue]:
        return [self.statuses.new, self.statuses.sent]

    def message_id_for(self, row_id: Any, stored: Any) -> str:
        """The stored message id ('' when NULL: the relay fails such a row), or the derived
        ``service:table:row_id`` for tables without a message id column."""
        if self.stores_message_ids:
            return "" if stored is None else str(stored)
        return f"{self.message_prefix}{row_id}"

    def row_id_from_message_id(self, message_id: str) -> str | None:
        if not message_id.startswith(self.message_prefix):
            return None
        return message_id[len(self.message_prefix) :]

    def newest_value(self, conn: Connection, logical: str) -> Any:
        """The newest row's value of a mapped column (a primary-key lookup), None for an empty table."""
        column = self.column(logical)
        assert column is not None, f"columns.{logical} is mapped"
        return conn.execute(
            text(f"SELECT {column} FROM {self.name} ORDER BY {self.id_col} DESC LIMIT 1")
        ).scalar()

    def cursor_start(self, conn: Connection) -> Any:
        """A value below every primary key: '' for textual keys (UUIDs), -1 for numeric ones; None (the
        start) with ``order_by``."""
        if self.ordered:
            return None
        if self._cursor_start is not None:
            return self._cursor_start
        kind = column_types(conn, self.config.table).get(self.columns.id.lower())
        if kind is None:
            raise MissingConfigurationError(
                f"service {self.config.service!r}: table {self.config.table} has no column "
                f"{self.columns.id!r} (columns.id); run 'outbox-relay validate'"
            )
        textual = str(kind).lower() in {"char", "varchar", "binary", "varbinary", "text"}
        self._cursor_start = "" if textual else -1
        return self._cursor_start
