"""SQL identifier validation and quoting.

Table and column names come from user YAML, so they are never interpolated
unchecked: each must match a conservative pattern and is always backtick-quoted.
Values are never formatted into SQL at all; they are bound parameters.
"""

from __future__ import annotations

import re

from outbox_relay.errors import ConfigurationError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class InvalidIdentifierError(ConfigurationError):
    """A table or column name that is not a plain SQL identifier."""


def check_identifier(name: str) -> str:
    """Return ``name`` if it is a safe identifier, else raise with the reason."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidIdentifierError(
            f"{name!r} is not a valid SQL identifier: use letters, digits and '_', "
            "start with a letter or '_', at most 64 characters"
        )
    return name


def check_table_name(name: str) -> str:
    """Accept ``table`` or ``schema.table``; each part must be a safe identifier."""
    if not isinstance(name, str):
        raise InvalidIdentifierError(f"{name!r} is not a valid table name")
    parts = name.split(".")
    if len(parts) > 2:
        raise InvalidIdentifierError(f"{name!r} is not a valid table name: use 'table' or 'schema.table'")
    for part in parts:
        check_identifier(part)
    return name
