"""The project's DDL, shipped inside the package (``outbox_relay/store/sql``): the standard outbox table under
any name, the retry-state and row-history tables every service shares, and the consumers' inbox table.
Also a scratch database with it, for the demos and tests.

The files are plain MySQL with the standard table named ``outbox_message``; ``tables`` renames it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL, Connection, Engine, create_engine, make_url, text

from outbox_relay.config import STANDARD_COLUMNS, ServiceConfig
from outbox_relay.config.identifiers import TableName
from outbox_relay.config.table import Columns
from outbox_relay.errors import ConfigurationError
from outbox_relay.store.introspection import column_types

SQL_DIR = Path(__file__).with_name("sql")
STANDARD_TABLE = "outbox_message"
(
    OUTBOX_FILE,
    ATTEMPT_FILE,
    INBOX_FILE,
    HISTORY_FILE,
    LOCK_BUSY_FILE,
    DUPLICATE_FILE,
    PROGRESS_FILE,
    SENT_RANGE_FILE,
) = (
    "01_outbox_message.sql",
    "02_outbox_relay_attempt.sql",
    "03_inbox_message.sql",
    "04_outbox_relay_replay.sql",
    "05_outbox_relay_lock_busy.sql",
    "06_inbox_duplicate.sql",
    "07_outbox_relay_progress.sql",
    "08_outbox_relay_sent_range.sql",
)
_MAX_NAME = 64


@dataclass(frozen=True)
class TableDDL:
    """One table's ``CREATE TABLE IF NOT EXISTS``, with the comments of its file."""

    table: TableName
    what: str
    sql: str

    @property
    def statement(self) -> str:
        """The statement alone (comments dropped), for a driver that runs one statement at a time."""
        return statements(self.sql)[0]


def has_standard_shape(config: ServiceConfig) -> bool:
    """No ``columns`` mapping: the service's table has the project's shape, which ``tables`` creates."""
    return config.columns == Columns.model_validate(STANDARD_COLUMNS)


def statements(sql: str) -> list[str]:
    body = re.sub(r"--[^\n]*", "", sql)
    return [s.strip() for s in body.split(";") if s.strip()]


def _read(name: str) -> str:
    return (SQL_DIR / name).read_text(encoding="utf-8")


def _renamed(sql: str, table: TableName) -> str:
    """The standard table's DDL for ``table``: the name quoted in ``CREATE TABLE``; the index names follow a
    plain name when they still fit MySQL's 64 characters (they need only be unique within the table)."""
    created = re.sub(
        rf"CREATE TABLE IF NOT EXISTS {STANDARD_TABLE}\b", f"CREATE TABLE IF NOT EXISTS {table.sql}", sql
    )
    if table.schema is None and re.fullmatch(r"[A-Za-z0-9_]+", table.name):
        longest = max(re.findall(rf"\b\w*_{STANDARD_TABLE}_\w*\b", created), key=len)
        if len(longest) - len(STANDARD_TABLE) + len(table.name) <= _MAX_NAME:
            created = re.sub(rf"_{STANDARD_TABLE}_", f"_{table.name}_", created)
    return created


def tables(outbox_table: str = STANDARD_TABLE, *, inbox: bool = False) -> list[TableDDL]:
    """The DDL a service on the standard table needs: its outbox table (named ``outbox_table``: ``name``
    or ``schema.name``), the shared retry-state, row-history, busy-lock, progress and sent-range tables,
    and with ``inbox`` the consumers' inbox table and its count of skipped redeliveries. Each is
    ``CREATE TABLE IF NOT EXISTS``: applying it twice changes nothing."""
    table = TableName.parse(outbox_table, "outbox table")
    found = [
        TableDDL(table, "the outbox table (the standard shape)", _renamed(_read(OUTBOX_FILE), table)),
        TableDDL(
            TableName(None, "outbox_relay_attempt"),
            "retry state of tables without attempt columns",
            _read(ATTEMPT_FILE),
        ),
        TableDDL(
            TableName(None, "outbox_relay_replay"),
            "row history: replays, republishes, failed attempts",
            _read(HISTORY_FILE),
        ),
        TableDDL(
            TableName(None, "outbox_relay_lock_busy"),
            "relay runs in a row that found the relay lock held",
            _read(LOCK_BUSY_FILE),
        ),
        TableDDL(
            TableName(None, "outbox_relay_progress"),
            "exactly-once delivery: the last batch of each relay marked here",
            _read(PROGRESS_FILE),
        ),
        TableDDL(
            TableName(None, "outbox_relay_sent_range"),
            "which relay run sent which rows (ranges of row ids)",
            _read(SENT_RANGE_FILE),
        ),
    ]
    if inbox:
        found.append(TableDDL(TableName(None, "inbox_message"), "the consumers' inbox", _read(INBOX_FILE)))
        found.append(
            TableDDL(
                TableName(None, "inbox_duplicate"),
                "redeliveries each consumer skipped",
                _read(DUPLICATE_FILE),
            )
        )
    return found


def create_missing(conn: Connection, wanted: list[TableDDL]) -> list[tuple[TableDDL, bool]]:
    """Create each table that does not exist yet; (table, created) for each, an existing one left as it is
    (its shape is ``outbox-relay validate``'s to check)."""
    done = []
    for table in wanted:
        exists = bool(column_types(conn, str(table.table)))
        if not exists:
            conn.execute(text(table.statement))
        done.append((table, not exists))
    return done


def recreate_database(server_url: str | URL, name: str) -> URL:
    """Drop and create ``name``; returns the URL of the new database."""
    if not re.match(r"^[A-Za-z0-9_]{1,64}$", name):
        raise ConfigurationError(f"bad database name {name!r}")
    url = make_url(server_url)
    admin = create_engine(url.set(database=None))
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    admin.dispose()
    return url.set(database=name)


def apply_ddl(engine: Engine, *files: Path) -> None:
    """Run SQL files (default: every table of the project, the outbox table as ``outbox_message``)."""
    sqls = [path.read_text(encoding="utf-8") for path in files] or [t.sql for t in tables(inbox=True)]
    with engine.begin() as conn:
        for sql in sqls:
            for statement in statements(sql):
                conn.execute(text(statement))
