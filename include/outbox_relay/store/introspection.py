"""What the live database says about a table: its columns and their types, its indexes."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.store.naming import quote, split_table_name

_INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint"})
_TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"})


def _columns(conn: Connection, table: str) -> list[tuple[str, str, bool, str | None]]:
    """(lower-cased name, data type, nullable, character set) per column, in the table's column order."""
    schema, name = split_table_name(table)
    rows = conn.execute(
        text(
            "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :name ORDER BY ORDINAL_POSITION"
        ),
        {"schema": schema, "name": name},
    )
    return [(str(r[0]).lower(), str(r[1]), str(r[2]) == "YES", r[3]) for r in rows]


def column_types(conn: Connection, table: str) -> dict[str, str]:
    """Lower-cased column name -> data type, from information_schema; empty if the table is missing."""
    return {column: kind for column, kind, _, _ in _columns(conn, table)}


def not_null_columns(conn: Connection, table: str) -> set[str]:
    """Lower-cased names of the columns declared NOT NULL."""
    return {column for column, _, nullable, _ in _columns(conn, table) if not nullable}


def value_kinds(conn: Connection, table: str) -> dict[str, str]:
    """Lower-cased column name -> ``integer``, ``text`` (characters in a character set, or MySQL's JSON
    type) or ``other`` (binary strings, times, decimals, ...): what a value turns into when the server
    writes it into a JSON document, and whether that reads back as the very value the driver returns."""

    def kind(data_type: str, charset: str | None) -> str:
        data_type = data_type.lower()
        if data_type in _INTEGER_TYPES:
            return "integer"
        if data_type == "json" or (data_type in _TEXT_TYPES and charset not in (None, "binary")):
            return "text"
        return "other"

    return {column: kind(data_type, charset) for column, data_type, _, charset in _columns(conn, table)}


def indexes(conn: Connection, table: str) -> dict[str, list[str]]:
    """Index name -> its lower-cased columns in index order."""
    schema, name = split_table_name(table)
    rows = conn.execute(
        text(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS "
            "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :name "
            "ORDER BY INDEX_NAME, SEQ_IN_INDEX"
        ),
        {"schema": schema, "name": name},
    )
    found: dict[str, list[str]] = {}
    for index_name, column in rows:
        found.setdefault(str(index_name), []).append(str(column).lower())
    return found


def sample_values(conn: Connection, table: str, column: str, limit: int) -> list[Any]:
    """Up to ``limit`` values of ``column`` (the first the server finds: enough to tell what kind they are)."""
    rows = conn.execute(text(f"SELECT {quote(column)} FROM {quote(table)} LIMIT {int(limit)}"))
    return [r[0] for r in rows]


def table_exists(conn: Connection, table: str) -> bool:
    return bool(column_types(conn, table))


def create_like_ddl(table: str, like: str) -> str:
    """The statement that makes ``table`` an empty copy of ``like``'s shape (printed, never executed)."""
    return f"CREATE TABLE {quote(table)} LIKE {quote(like)};"


def add_index_ddl(table: str, name: str, columns: list[str]) -> str:
    """The statement an operator runs to add a missing index (printed by ``validate``, never executed)."""
    return f"ALTER TABLE {quote(table)} ADD INDEX {quote(name)} ({', '.join(quote(c) for c in columns)});"


def _shard_column(column: str, shard_sql: str) -> str:
    return f"{quote(column)} TINYINT UNSIGNED AS {shard_sql} STORED"


def add_shard_column_ddl(
    table: str, column: str, shard_sql: str, index: str, index_columns: list[str]
) -> str:
    """The statement that adds a stored generated shard column holding ``shard_sql`` and the index its
    claims scan (printed by ``validate``, never executed)."""
    columns = ", ".join(quote(c) for c in index_columns)
    return (
        f"ALTER TABLE {quote(table)} ADD COLUMN {_shard_column(column, shard_sql)}, "
        f"ADD INDEX {quote(index)} ({columns});"
    )


def fix_shard_column_ddl(table: str, column: str, shard_sql: str) -> str:
    """The statement that makes a shard column hold ``shard_sql`` again (after a change of ``shards``)."""
    return f"ALTER TABLE {quote(table)} MODIFY COLUMN {_shard_column(column, shard_sql)};"


class IndexHints:
    """``FORCE INDEX (...)`` hints for one table, its indexes read once (on first use) per instance."""

    def __init__(self, table: str) -> None:
        self.table = table
        self._indexes: dict[str, list[str]] | None = None

    def hint(self, conn: Connection, columns: list[str]) -> str | None:
        """``FORCE INDEX (...)`` for an index starting with these (physical) columns, if the table has one.
        The optimizer otherwise walks the primary key for ``ORDER BY id LIMIT 1`` or reads the whole table
        when the wanted statuses are most rows, both far slower on a big table."""
        if self._indexes is None:
            self._indexes = indexes(conn, self.table)
        wanted = [c.lower() for c in columns]
        found = next((n for n, cols in self._indexes.items() if cols[: len(wanted)] == wanted), None)
        return None if found is None else f"FORCE INDEX ({quote(found)})"
