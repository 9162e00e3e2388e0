"""Identifiers and value lists as they appear in SQL text: quoting, ``IN`` lists, table names, error texts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, CursorResult, bindparam, text
from sqlalchemy.dialects.mysql.pymysql import MySQLDialect_pymysql
from sqlalchemy.sql.elements import TextClause
from typing_extensions import Unpack

from outbox_relay.config.identifiers import TableName, check_identifier

ATTEMPT_TABLE = "outbox_relay_attempt"
REPLAY_TABLE = "outbox_relay_replay"
LOCK_BUSY_TABLE = "outbox_relay_lock_busy"
PROGRESS_TABLE = "outbox_relay_progress"
SENT_RANGE_TABLE = "outbox_relay_sent_range"
MAX_ERROR_CHARS = 2000


def quote(name: str) -> str:
    """Backtick-quote a validated identifier (or dotted table name); a ``TableName`` quotes itself (any
    MySQL identifier, backticks doubled)."""
    if isinstance(name, TableName):
        return name.sql
    return ".".join(f"`{check_identifier(part)}`" for part in name.split("."))


def expanding(sql: str, *names: str) -> TextClause:
    """SQL text whose named parameters take lists (``IN :ids``); a name the text does not use (a status
    filter a status-less table writes without its parameter) is left out."""
    used = [n for n in names if re.search(rf":{n}\b", sql)]
    return text(sql).bindparams(*(bindparam(n, expanding=True) for n in used))


_DRIVER_DIALECT = MySQLDialect_pymysql()


_PLACEHOLDER = re.compile(r"%[%s]")


@lru_cache(maxsize=512)
def _driver_form(sql: str) -> tuple[list[str], tuple[str, ...]]:
    """``sql`` compiled for the driver (``%s`` placeholders, literal ``%`` doubled), cut at its
    placeholders: the text around them, and the parameter each one takes."""
    compiled = text(sql).compile(dialect=_DRIVER_DIALECT)
    statement, pieces, start = str(compiled), [], 0
    for found in _PLACEHOLDER.finditer(statement):
        if found.group() == "%s":
            pieces.append(statement[start : found.start()])
            start = found.end()
    pieces.append(statement[start:])
    return pieces, tuple(compiled.positiontup or ())


def run_with_lists(
    conn: Connection, sql: str, params: Mapping[str, Any]
) -> CursorResult[Unpack[tuple[Any, ...]]]:
    """Run ``:name`` SQL whose list values (``IN :ids``) are written out: integers straight into the text
    (a batch's 2,000 row ids are one ``join``, not 2,000 escaped parameters), anything else by the driver
    (PyMySQL escapes each item). The statement is compiled once per text, not once per batch."""
    pieces, names = _driver_form(sql)
    out, values = [pieces[0]], []
    for name, piece in zip(names, pieces[1:], strict=True):
        value = params[name]
        if isinstance(value, list) and value and all(type(v) is int for v in value):
            out.append(f"({','.join(map(str, value))})")
        else:
            out.append("%s")
            values.append(tuple(value) if isinstance(value, list) else value)
        out.append(piece)
    return conn.exec_driver_sql("".join(out), tuple(values))


def split_table_name(table: str) -> tuple[str | None, str]:
    """``schema.table`` -> (schema, table); a bare name has no schema (the connection's database)."""
    if isinstance(table, TableName):
        return table.schema, table.name
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def truncate_error(error: str) -> str:
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 3] + "..."
