"""Values that live inside JSON, on the real MariaDB and broker: Eventuate Tram keeps the message key in
its headers JSON (PARTITION_ID); DotNetCore.CAP stores an envelope {"Headers": {...}, "Value": {...}} in
`cap.published`.Content. Consumers get the key, the Value as the body and the Headers as Kafka headers;
a row whose path is missing fails alone, naming the path."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import run_relay

pytestmark = pytest.mark.integration

EVENTUATE = """CREATE TABLE message (id VARCHAR(255) PRIMARY KEY, destination LONGTEXT NOT NULL,
  headers LONGTEXT NOT NULL, payload LONGTEXT NOT NULL, published SMALLINT DEFAULT 0,
  message_partition SMALLINT, creation_time BIGINT, INDEX ix_message_published_id (published, id))"""
# DotNetCore.CAP's MySQL storage (MySqlStorageInitializer), with its default table prefix "cap".
CAP = """CREATE TABLE `cap.published` (`Id` BIGINT NOT NULL, `Version` VARCHAR(20) DEFAULT NULL,
  `Name` VARCHAR(200) NOT NULL, `Content` LONGTEXT, `Retries` INT(11) DEFAULT NULL, `Added` DATETIME NOT NULL,
  `ExpiresAt` DATETIME DEFAULT NULL, `StatusName` VARCHAR(40) NOT NULL, PRIMARY KEY (`Id`),
  INDEX `IX_ExpiresAt_StatusName` (`ExpiresAt`, `StatusName`), INDEX `ix_status_id` (`StatusName`, `Id`))"""


def _statuses(engine: Engine, sql: str) -> dict[Any, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text(sql)).all())  # type: ignore[arg-type]


def _error(engine: Engine, row_id: str) -> str:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT last_error FROM outbox_relay_attempt WHERE row_id = :r"), {"r": row_id}
        )
        return str(found.scalar_one())


def test_eventuate_keys_from_the_headers_json(db_engine: Engine, topic_name: Callable[[str], str]) -> None:
    topic = topic_name("eventuate_keys")
    create_topics(topic)
    now_ms = int(time.time() * 1000)
    with db_engine.begin() as conn:
        conn.execute(text(EVENTUATE))
        for row_id, headers in [("m1", {"PARTITION_ID": "order-1", "ID": "m1"}), ("m2", {"ID": "m2"}),
                                ("m3", {"PARTITION_ID": "order-1", "ID": "m3"})]:  # fmt: skip
            conn.execute(
                text("INSERT INTO message (id, destination, headers, payload, creation_time) "
                     "VALUES (:id, :t, :h, '{\"total\": 5}', :c)"),
                {"id": row_id, "t": topic, "h": json.dumps(headers), "c": now_ms},
            )  # fmt: skip
    config = ServiceConfig.model_validate({
        "service": "eventuate", "table": "message", "topic": topic, "retention": None, "created_at_unit": "epoch_ms",
        "columns": {"id": "id", "message_id": "id", "topic": "destination", "payload": "payload",
                    "headers": "headers", "status": "published", "created_at": "creation_time"},
        "statuses": {"new": 0, "sent": 1, "confirmed": None, "failed": None},
        "json_values": {"key": {"column": "headers", "path": "$.PARTITION_ID"}},
        "retry": {"max_attempts": 1},
    })  # fmt: skip
    stats = run_relay(config, db_engine)
    assert (stats.published, stats.failed) == (2, 1)
    assert _statuses(db_engine, "SELECT id, published FROM message") == {"m1": 1, "m2": 0, "m3": 1}
    assert "key path $.PARTITION_ID not found in columns.headers" in _error(db_engine, "m2")
    records = read_all(topic)
    assert [(r.key, r.headers["outbox-message-id"], r.headers["PARTITION_ID"]) for r in records] == [
        ("order-1", "m1", "order-1"), ("order-1", "m3", "order-1"),
    ]  # fmt: skip


def test_cap_envelopes_become_body_and_headers(db_engine: Engine, topic_name: Callable[[str], str]) -> None:
    topic = topic_name("cap")
    create_topics(topic)

    def envelope(n: int) -> str:
        headers = {"cap-msg-id": f"cap-{n}", "cap-msg-name": topic, "cap-corr-seq": "0"}
        return json.dumps({"Headers": headers, "Value": {"OrderId": n, "Note": "ü"}})

    with db_engine.begin() as conn:
        conn.execute(text(CAP))
        for n, content in [
            (1, envelope(1)),
            (2, json.dumps({"Headers": {"cap-msg-id": "cap-2"}})),
            (3, envelope(3)),
        ]:
            conn.execute(
                text("INSERT INTO `cap.published` (`Id`, `Version`, `Name`, `Content`, `Retries`, `Added`, "
                     "`StatusName`) VALUES (:id, 'v1', :name, :content, 0, NOW(), 'Scheduled')"),
                {"id": n, "name": topic, "content": content},
            )  # fmt: skip
    config = ServiceConfig.model_validate({
        "service": "cap", "table": {"name": "cap.published"}, "topic": topic, "retention": None,
        "columns": {"id": "Id", "topic": "Name", "payload": "Content", "status": "StatusName", "created_at": "Added"},
        "statuses": {"new": "Scheduled", "sent": "Succeeded", "confirmed": None, "failed": "Failed"},
        "json_values": {"message_id": {"path": '$.Headers."cap-msg-id"'}, "body": "$.Value", "headers": "$.Headers"},
        "retry": {"max_attempts": 1},
    })  # fmt: skip
    stats = run_relay(config, db_engine)
    assert (stats.published, stats.failed) == (2, 1)
    assert _statuses(db_engine, "SELECT `Id`, `StatusName` FROM `cap.published`") == {
        1: "Succeeded", 2: "Failed", 3: "Succeeded",
    }  # fmt: skip
    assert "payload has no $.Value" in _error(db_engine, "2")
    records = sorted(read_all(topic), key=lambda r: r.headers["cap-msg-id"])  # no key: any partition
    assert [json.loads(r.value) for r in records] == [
        {"OrderId": 1, "Note": "ü"},
        {"OrderId": 3, "Note": "ü"},
    ]
    assert [(r.headers["outbox-message-id"], r.headers["cap-msg-id"], r.headers["cap-msg-name"]) for r in records] == [
        ("cap-1", "cap-1", topic), ("cap-3", "cap-3", topic),
    ]  # fmt: skip


def test_bad_json_values_are_named() -> None:
    base: dict[str, Any] = {"service": "s", "topic": "t"}
    for extra, words in [
        (
            {"json_values": {"key": {"path": "$.a"}}},
            "key is mapped both as columns.key and as json_values.key",
        ),
        ({"json_values": {"event_type": {"path": "$.*"}}}, "is not a JSON path the relay reads"),
        ({"json_values": {"body": "$.x'; DROP TABLE t; --"}}, "is not a JSON path the relay reads"),
        (
            {
                "columns": {"id": "id", "status": "s", "payload": "p"},
                "json_values": {"key": {"column": "headers", "path": "$.k"}},
            },
            "json_values.key reads columns.headers, which is not mapped",
        ),
    ]:
        with pytest.raises(ValueError) as caught:
            ServiceConfig.model_validate({**base, **extra})
        assert words in str(caught.value), (extra, str(caught.value))
