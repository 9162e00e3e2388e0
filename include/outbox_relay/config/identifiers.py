"""SQL identifier validation and quoting.

Table and column names come from user YAML, so they are never interpolated
unchecked: each must match a conservative pattern and is always backtick-quoted.
Values are never formatted into SQL at all; they are bound parameters.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import PlainSerializer, PlainValidator, WithJsonSchema

from outbox_relay.errors import ConfigurationError

_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class InvalidIdentifierError(ConfigurationError):
    """A table name MySQL would refuse, or a column name that is not a plain identifier."""


def check_identifier(name: str) -> str:
    """A column name: a plain identifier (the one rule: tables may be any MySQL name, columns may not)."""
    if not isinstance(name, str) or not _IDENTIFIER.match(name):
        raise InvalidIdentifierError(
            f"{name!r} is not a valid column name: use letters, digits and '_', start with a letter or '_', at "
            "most 64 characters (only table names may be any MySQL name; reach such a column through a view)"
        )
    return name


MAX_IDENTIFIER_CHARS = 64
_PART = re.compile(r"`((?:[^`]|``)+)`|([A-Za-z_][A-Za-z0-9_]*)")


def check_any_identifier(name: Any, what: str) -> str:
    """Any name MySQL accepts as a quoted identifier: 1-64 characters, none of them a control character
    or outside the Basic Multilingual Plane, no trailing space. Quoting makes every other character safe
    (``quote`` doubles backticks)."""
    if not isinstance(name, str) or not name:
        raise InvalidIdentifierError(f"{what} {name!r} is not a name: give a non-empty string")
    problem = None
    if len(name) > MAX_IDENTIFIER_CHARS:
        problem = f"it has {len(name)} characters, MySQL allows {MAX_IDENTIFIER_CHARS}"
    elif any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        problem = "it contains a control character"
    elif any(ord(c) > 0xFFFF for c in name):
        problem = "it contains a character outside the Basic Multilingual Plane (MySQL refuses those)"
    elif name.endswith(" "):
        problem = "it ends with a space (MySQL refuses that)"
    if problem:
        raise InvalidIdentifierError(f"{what} {name!r} is not a valid MySQL identifier: {problem}")
    return name


class TableName(str):
    r"""A table, optionally with its schema (database). As a string it reads as written in SQL without
    needless quotes (``orders``, ``shop.orders``, ``\`cap.published\```): that form names the table in
    messages, lock names and the attempt table. ``sql`` is always fully quoted."""

    schema: str | None
    name: str

    def __new__(cls, schema: str | None, name: str) -> TableName:
        parts = [p for p in (schema, name) if p is not None]
        shown = ".".join(p if _IDENTIFIER.match(p) else _backticked(p) for p in parts)
        made = super().__new__(cls, shown)
        made.schema, made.name = schema, name
        return made

    def __getnewargs__(self) -> tuple[str | None, str]:  # type: ignore[override]  # copy/pickle
        return self.schema, self.name

    @property
    def sql(self) -> str:
        return ".".join(_backticked(p) for p in (self.schema, self.name) if p is not None)

    @classmethod
    def parse(cls, value: Any, what: str = "table") -> TableName:
        """``{schema: ..., name: ...}`` (any MySQL identifiers), a quoted string (```cap.published```,
        ``shop.`cap.published```) or a plain ``table`` / ``schema.table``."""
        if isinstance(value, TableName):
            return value
        if isinstance(value, dict):
            unknown = set(value) - {"schema", "name"}
            if unknown or "name" not in value:
                raise InvalidIdentifierError(
                    f"{what} {value!r}: give {{name: ..., schema: ...}} (schema optional)"
                    + (f"; unknown keys {sorted(unknown)}" if unknown else "")
                )
            schema = value.get("schema")
            return cls(
                None if schema is None else check_any_identifier(schema, f"{what} schema"),
                check_any_identifier(value["name"], f"{what} name"),
            )
        if not isinstance(value, str):
            raise InvalidIdentifierError(f"{what} {value!r} is not a table name")
        parts = _split_quoted(value, what)
        return cls(*parts) if len(parts) == 2 else cls(None, parts[0])


def _backticked(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _split_quoted(value: str, what: str) -> list[str]:
    """``a.b``, ```a.b```, ``a.`b c``` ... into its one or two names; anything else is refused."""
    parts, rest = [], value
    while True:
        found = _PART.match(rest)
        if found is None:
            break
        quoted, plain = found.groups()
        parts.append(quoted.replace("``", "`") if quoted is not None else plain)
        rest = rest[found.end() :]
        if not rest.startswith(".") or len(parts) == 2:
            break
        rest = rest[1:]
    if rest or not parts:
        raise InvalidIdentifierError(
            f"{what} {value!r} is not a valid table name: write 'table' or 'schema.table' with letters, "
            "digits and '_', quote other names with backticks ('`cap.published`'), or give "
            "{schema: ..., name: ...}"
        )
    for part in parts:
        check_any_identifier(part, what)
    return parts


def check_table_name(name: Any) -> TableName:
    """A ``TableName`` from any accepted form (see ``TableName.parse``)."""
    return TableName.parse(name)


# A config field holding a table name in any of its written forms.
TABLE_FORMS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "description": "'table', 'schema.table', or backtick-quoted: '`cap.published`'"},
        {
            "type": "object",
            "properties": {"schema": {"type": "string"}, "name": {"type": "string"}},
            "required": ["name"],
            "additionalProperties": False,
        },
    ]
}
TableNameField = Annotated[
    TableName,
    PlainValidator(check_table_name),
    PlainSerializer(str, return_type=str),
    WithJsonSchema(TABLE_FORMS_SCHEMA),
]
