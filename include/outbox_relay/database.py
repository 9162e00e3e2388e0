"""The core's public way into the database, for the Airflow glue, the inbox library and the examples (none
imports ``outbox_relay.store``, import contracts keep it so): engines, the tables' DDL, a service's
``OutboxStore`` (the one facade over its outbox table, see ``store.outbox``) and a consumer's inbox table.
"""

from __future__ import annotations

from outbox_relay.store.connect import make_engine, ping
from outbox_relay.store.ddl import (
    STANDARD_TABLE,
    TableDDL,
    apply_ddl,
    create_missing,
    has_standard_shape,
    recreate_database,
    tables,
)
from outbox_relay.store.inbox import InboxTable
from outbox_relay.store.mysql_errors import insert_once, is_duplicate_on
from outbox_relay.store.naming import truncate_error
from outbox_relay.store.outbox import OutboxStore
from outbox_relay.store.reconciliation import REDELIVERY_NOTE

__all__ = [
    "REDELIVERY_NOTE",
    "STANDARD_TABLE",
    "InboxTable",
    "OutboxStore",
    "TableDDL",
    "apply_ddl",
    "create_missing",
    "has_standard_shape",
    "insert_once",
    "is_duplicate_on",
    "make_engine",
    "ping",
    "recreate_database",
    "tables",
    "truncate_error",
]
