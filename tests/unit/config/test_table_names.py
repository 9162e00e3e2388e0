"""Tables with any MySQL name (DotNetCore.CAP's `cap.published`, spaces, reserved words, unicode): the
written forms, how each is quoted, and what is still refused with a message naming the problem."""

from __future__ import annotations

import copy
import pickle
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from outbox_relay.config import ServiceConfig
from outbox_relay.config.identifiers import InvalidIdentifierError, TableName
from outbox_relay.store.naming import quote, split_table_name
from tests.readme import service_files


@pytest.mark.parametrize(
    ("written", "shown", "sql"),
    [
        ("outbox_message", "outbox_message", "`outbox_message`"),
        ("shop.outbox_message", "shop.outbox_message", "`shop`.`outbox_message`"),
        ("`cap.published`", "`cap.published`", "`cap.published`"),
        ("shop.`cap.published`", "shop.`cap.published`", "`shop`.`cap.published`"),
        ({"name": "cap.published"}, "`cap.published`", "`cap.published`"),
        ({"schema": "my shop", "name": "Order"}, "`my shop`.Order", "`my shop`.`Order`"),
        ({"name": "select"}, "select", "`select`"),  # a reserved word: always quoted in SQL
        ({"name": "ausgänge-€"}, "`ausgänge-€`", "`ausgänge-€`"),
        ({"name": "x`; DROP TABLE y; --"}, "`x``; DROP TABLE y; --`", "`x``; DROP TABLE y; --`"),
    ],
)
def test_written_forms(written: Any, shown: str, sql: str) -> None:
    config = ServiceConfig.model_validate({"service": "s", "topic": "t", "table": written})
    assert str(config.table) == shown and quote(config.table) == sql
    assert isinstance(config.table, TableName)
    assert split_table_name(config.table) == (config.table.schema, config.table.name)
    assert copy.deepcopy(config).table.sql == sql and pickle.loads(pickle.dumps(config.table)).sql == sql


@pytest.mark.parametrize(
    ("written", "words"),
    [
        ("orders; DROP TABLE x", "quote other names with backticks"),
        ("a.b.c", "not a valid table name"),
        ("`unclosed", "not a valid table name"),
        ({"name": "tab\there"}, "control character"),
        ({"name": "trailing "}, "ends with a space"),
        ({"name": "x" * 65}, "65 characters, MySQL allows 64"),
        ({"name": "emoji \U0001f600"}, "outside the Basic Multilingual Plane"),
        ({"schema": "s"}, "give {name: ..., schema: ...}"),
        ({"name": "t", "db": "s"}, "unknown keys ['db']"),
        ({"name": ""}, "not a name"),
    ],
)
def test_refused_names_say_why(written: Any, words: str) -> None:
    with pytest.raises(ValidationError, match="table") as caught:
        ServiceConfig.model_validate({"service": "s", "topic": "t", "table": written})
    assert words in str(caught.value)
    with pytest.raises(InvalidIdentifierError):
        TableName.parse(written)


def test_the_consumer_table_takes_the_same_forms() -> None:
    rec = {"consumer_table": {"name": "inbox.received"}, "columns": {"message_id": "id", "status": "s"}}
    config = ServiceConfig.model_validate({"service": "s", "topic": "t", "reconciliation": rec})
    assert (
        config.reconciliation is not None
        and quote(config.reconciliation.consumer_table) == "`inbox.received`"
    )


def test_the_table_is_written_back_as_shown() -> None:
    config = ServiceConfig.model_validate({"service": "s", "topic": "t", "table": {"name": "cap.published"}})
    assert config.model_dump()["table"] == "`cap.published`"
    assert ServiceConfig.model_validate(config.model_dump()).table.name == "cap.published"


def test_the_documented_service_files_are_valid() -> None:
    """Every YAML block of the README and docs/ that is a service file (it starts with '# dags/services/...')."""
    files = service_files()
    assert {"coupon", "cap_orders", "eventuate", "shipments"} <= set(files)
    for name, document in files.items():
        ServiceConfig.model_validate({"service": name, **document})


def test_one_rule_for_names_as_the_reference_states_it() -> None:
    """Tables may be any MySQL name, columns must be plain identifiers: the reference says exactly that,
    and the models do it."""
    readme = (Path(__file__).resolve().parents[3] / "docs" / "configuration.md").read_text()
    assert "**Names, one rule.** A *table*" in readme and "must be a\nplain identifier" in readme
    assert "must be plain SQL identifiers" not in readme  # the old contradicting sentence
    spaced = ServiceConfig.model_validate(
        {
            "service": "s",
            "topic": "t",
            "table": "`my outbox`",
            "retention": None,
            "columns": {"id": "id", "status": "status", "payload": "body"},
        }
    )
    assert spaced.table.sql == "`my outbox`"
    with pytest.raises(
        ValueError, match=r"'my id' is not a valid column name: .* \(only table names may be any MySQL"
    ):
        ServiceConfig.model_validate(
            {
                "service": "s",
                "topic": "t",
                "retention": None,
                "columns": {"id": "my id", "status": "status", "payload": "body"},
            }
        )
