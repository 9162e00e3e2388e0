"""Identifiers and value lists as they appear in SQL text: quoting, ``IN`` lists, table names, error texts."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.sql.elements import TextClause

from outbox_relay.config.identifiers import TableName, check_identifier

ATTEMPT_TABLE = "outbox_relay_attempt"
REPLAY_TABLE = "outbox_relay_replay"
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


def split_table_name(table: str) -> tuple[str | None, str]:
    """``schema.table`` -> (schema, table); a bare name has no schema (the connection's database)."""
    if isinstance(table, TableName):
        return table.schema, table.name
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def id_list(ids: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """SQL for ``IN (...)``: integer ids inline (one short statement, no per-id parameter), others bound."""
    if all(type(i) is int for i in ids):
        return ",".join(map(str, ids)), {}
    return ",".join(f":id_{n}" for n in range(len(ids))), {f"id_{n}": v for n, v in enumerate(ids)}


def truncate_error(error: str) -> str:
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 3] + "..."
