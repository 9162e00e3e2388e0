"""The DDL the package ships: the standard table under any name, the shared tables, one statement each."""

from __future__ import annotations

import re

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay.config.identifiers import InvalidIdentifierError
from outbox_relay.store.ddl import STANDARD_TABLE, has_standard_shape, statements, tables


def test_the_standard_set_is_the_outbox_table_and_the_shared_tables() -> None:
    assert [str(t.table) for t in tables()] == [
        STANDARD_TABLE,
        "outbox_relay_attempt",
        "outbox_relay_replay",
        "outbox_relay_lock_busy",
        "outbox_relay_progress",
        "outbox_relay_sent_range",
    ]
    assert [str(t.table) for t in tables(inbox=True)][-2:] == ["inbox_message", "inbox_duplicate"]
    for table in tables(inbox=True):
        assert table.statement.startswith("CREATE TABLE IF NOT EXISTS "), table.statement[:60]
        assert len(statements(table.sql)) == 1 and "--" not in table.statement


def test_a_named_table_gets_its_name_quoted_and_its_index_names_follow() -> None:
    sql = tables("orders_outbox")[0].statement
    assert sql.startswith("CREATE TABLE IF NOT EXISTS `orders_outbox` (")
    assert "UNIQUE KEY uq_orders_outbox_message_id (message_id)" in sql
    assert "KEY ix_orders_outbox_status_id (status, id)" in sql
    assert re.findall(r"KEY (\w+) ", sql) == [
        "uq_orders_outbox_message_id",
        "ix_orders_outbox_status_id",
        "ix_orders_outbox_created_at",
        "ix_orders_outbox_status_updated",
    ]


def test_schema_qualified_or_quoted_names_keep_the_standard_index_names() -> None:
    sql = tables("shop.`odd name`")[0].statement
    assert sql.startswith("CREATE TABLE IF NOT EXISTS `shop`.`odd name` (")
    assert "KEY ix_outbox_message_status_id (status, id)" in sql  # index names are per table
    long_name = "t" * 60  # ix_<60>_status_updated would pass MySQL's 64 characters
    assert "KEY ix_outbox_message_status_updated" in tables(long_name)[0].statement


def test_a_name_mysql_refuses_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidIdentifierError, match="70 characters, MySQL allows 64"):
        tables("x" * 70)


def test_only_a_service_without_a_columns_mapping_has_the_standard_shape() -> None:
    standard = ServiceConfig.model_validate({"service": "a", "topic": "t", "table": "orders_outbox"})
    legacy = ServiceConfig.model_validate(
        {
            "service": "b",
            "topic": "t",
            "table": "legacy",
            "columns": {"id": "tid", "status": "state", "payload": "body"},
            "retention": None,
        }
    )
    assert has_standard_shape(standard) and not has_standard_shape(legacy)
