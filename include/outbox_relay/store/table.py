"""One service's outbox table as SQL fragments: quoted names, its row filter, message ids, cursor start.

Every store module builds its statements from these, so a table's naming lives in one place. Every
identifier comes from a validated config and is quoted; values are always bound parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection

from outbox_relay.config import ServiceConfig, StatusValue
from outbox_relay.errors import MissingConfigurationError
from outbox_relay.store.introspection import column_types
from outbox_relay.store.naming import quote


class OutboxTable:
    """Built once per service from its config; holds no connection."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.columns = config.columns
        self.statuses = config.statuses
        self.name = quote(config.table)
        self.id_col = quote(self.columns.id)
        self.status_col = quote(self.columns.status)
        self.message_prefix = f"{config.service}:{config.table}:"
        # Several services sharing one table (row_filter) each see only their own rows.
        rf = config.row_filter
        self.row_filter = self.row_filter_on(self.name)
        self.filter_params: dict[str, Any] = {} if rf is None else {"row_filter": rf.equals}
        # :service and :tbl: which rows of the attempt table (outbox_relay_attempt) are this service's.
        self.attempt_params: dict[str, Any] = {"service": config.service, "tbl": config.table}
        self.lock_key = config.table if rf is None else f"{config.table}:{rf.equals}"
        self._cursor_start: Any = None

    def row_filter_on(self, qualifier: str) -> str:
        """``AND <qualifier>.<filter column> = :row_filter``, or nothing for a table of one service."""
        rf = self.config.row_filter
        return "" if rf is None else f" AND {qualifier}.{quote(rf.column)} = :row_filter"

    def column(self, logical: str) -> str | None:
        """The quoted column mapped to a logical field, or None when the table has none."""
        column = getattr(self.columns, logical)
        return None if column is None else quote(column)

    def set_clause(self, status_param: str, optional: Sequence[tuple[str, str]]) -> str:
        """``status = :param`` plus each optional assignment whose logical column is mapped."""
        sets = [f"{self.status_col} = :{status_param}"]
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
    def age_column(self) -> str:
        age = self.column("updated_at") or self.column("created_at")
        assert age is not None, "validated by ServiceConfig"
        return age

    @property
    def open_statuses(self) -> list[StatusValue]:
        return [self.statuses.new, self.statuses.sent]

    def message_id_for(self, row_id: Any, stored: Any) -> str:
        """The stored message id ('' when NULL: the relay fails such a row), or the derived
        ``service:table:row_id`` for tables without a message id column."""
        if self.columns.message_id:
            return "" if stored is None else str(stored)
        return f"{self.message_prefix}{row_id}"

    def row_id_from_message_id(self, message_id: str) -> str | None:
        if not message_id.startswith(self.message_prefix):
            return None
        return message_id[len(self.message_prefix) :]

    def cursor_start(self, conn: Connection) -> Any:
        """A value below every primary key: '' for textual keys (UUIDs), -1 for numeric ones."""
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
