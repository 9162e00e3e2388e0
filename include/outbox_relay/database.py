"""The core's public way into the database, for the Airflow glue and the inbox library (neither imports
``outbox_relay.store``, an import contract keeps it so): engines, the tables' DDL, a service's
``OutboxStore`` (the one facade over its outbox table, see ``store.outbox``) and a consumer's inbox table.
"""

from __future__ import annotations

from outbox_relay.store.connect import make_engine, ping
from outbox_relay.store.ddl import STANDARD_TABLE, TableDDL, create_missing, has_standard_shape, tables
from outbox_relay.store.inbox import InboxTable
from outbox_relay.store.naming import truncate_error
from outbox_relay.store.outbox import OutboxStore

__all__ = [
    "STANDARD_TABLE",
    "InboxTable",
    "OutboxStore",
    "TableDDL",
    "create_missing",
    "has_standard_shape",
    "make_engine",
    "ping",
    "tables",
    "truncate_error",
]
