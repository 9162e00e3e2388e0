"""Telling a redelivery (duplicate key on ONE named unique key) apart from every other database error.

The inbox consumer and the examples' idempotent writes all rely on it: any 1062 is not a redelivery
(a duplicate on another unique key is a real conflict that must surface)."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import Connection, text
from sqlalchemy.exc import DBAPIError, IntegrityError

DUPLICATE_ENTRY = 1062
NO_SUCH_TABLE = 1146
JSON_TOO_DEEP = 3157  # MySQL: "The JSON document exceeds the maximum depth" (JSON_VALID raises it)


def is_missing_table(exc: DBAPIError) -> bool:
    """MySQL/MariaDB error 1146: the statement names a table that does not exist."""
    return bool(getattr(exc.orig, "args", (None,))[0] == NO_SUCH_TABLE)


def is_duplicate_on(exc: IntegrityError, key_name: str) -> bool:
    """True only for MySQL/MariaDB error 1062 on ``key_name``.

    A NOT NULL (1048), foreign-key (1452), CHECK (4025) or a duplicate on another key is a real error
    and must surface; the message is "Duplicate entry '..' for key 'name'" (MySQL 8 writes
    'table.name'), so the key is matched exactly, not by prefix.
    """
    args: tuple[Any, ...] = tuple(getattr(exc.orig, "args", ()))
    if len(args) < 2 or args[0] != DUPLICATE_ENTRY:
        return False
    match = re.search(r"for key '(?:[^'.]*\.)?([^'.]+)'\s*$", str(args[1]))
    return match is not None and match.group(1) == key_name


def insert_once(conn: Connection, statement: str, params: dict[str, Any], key_name: str) -> bool:
    """Run an INSERT in a savepoint; False when it hit ``key_name`` (the row is already there: done before),
    True when inserted. Any other error rolls the savepoint back and is raised."""
    try:
        with conn.begin_nested():
            conn.execute(text(statement), params)
    except IntegrityError as exc:
        if is_duplicate_on(exc, key_name):
            return False
        raise
    return True
