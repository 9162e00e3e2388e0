"""Payload checks that hold on MariaDB and MySQL alike, on the real MariaDB: a binary payload column
(MariaDB's JSON_VALID accepts invalid UTF-8 there, MySQL's rejects everything), documents nested deeper
than the server's JSON limits (MariaDB: 32 levels, where JSON_VALID says 0; MySQL: 100, where it raises
error 3157 and fails the whole claim). A bad document fails only its own row."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.store import table as table_sql
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, run_relay, statuses

pytestmark = pytest.mark.integration


def _nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


def _errors(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {
            str(m): str(e) for m, e in conn.execute(text("SELECT message_id, last_error FROM outbox_message"))
        }


def test_a_binary_payload_column(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("blob")
    create_topics(topic)
    with db_engine.begin() as conn:
        conn.execute(text("ALTER TABLE outbox_message MODIFY payload LONGBLOB"))
    (good,) = insert_rows(db_engine, topic, ["a"], payload='{"ok": "ü"}')
    (latin1,) = insert_rows(db_engine, topic, ["b"], payload="{}")
    (broken,) = insert_rows(db_engine, topic, ["c"], payload='{"ok": ')
    with db_engine.begin() as conn:  # {"name":"<0xFC>"}: Latin-1, not UTF-8; MariaDB's JSON_VALID says 1
        conn.execute(text("UPDATE outbox_message SET payload = X'7B226E616D65223A22FC227D' WHERE message_id = :m"),
                     {"m": latin1})  # fmt: skip
    stats = run_relay(service_config(topic=topic, threshold_seconds=0, retry={"max_attempts": 1}), db_engine)
    assert (stats.published, stats.failed) == (1, 2)
    assert statuses(db_engine) == {good: "SENT", latin1: "FAILED", broken: "FAILED"}
    errors = _errors(db_engine)
    assert "payload is not valid UTF-8 (invalid start byte at byte 9)" in errors[latin1]
    assert "payload is not valid JSON" in errors[broken]
    (record,) = read_all(topic)
    assert record.value == '{"ok": "ü"}'.encode()


def test_deep_documents_are_relayed_and_only_a_too_deep_one_fails(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("deep")
    create_topics(topic)
    forty, three_hundred, far_too_deep = (
        insert_rows(db_engine, topic, [k], payload=_nested(d))[0]
        for k, d in (("a", 40), ("b", 300), ("c", 5000))
    )
    stats = run_relay(service_config(topic=topic, threshold_seconds=0, retry={"max_attempts": 1}), db_engine)
    assert (stats.published, stats.failed) == (2, 1)
    assert statuses(db_engine) == {forty: "SENT", three_hundred: "SENT", far_too_deep: "FAILED"}
    assert "nests deeper than the relay's JSON check allows" in _errors(db_engine)[far_too_deep]


def _mysql_like_json_valid(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """MySQL's JSON functions raise error 3157 beyond 100 levels: a stand-in does the same here."""
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE FUNCTION json_valid_like_mysql(doc LONGTEXT) RETURNS INT DETERMINISTIC BEGIN "
            "IF LOCATE(REPEAT('[', 101), doc) > 0 THEN SIGNAL SQLSTATE '22032' SET MYSQL_ERRNO = 3157, "
            "MESSAGE_TEXT = 'The JSON document exceeds the maximum depth of 100.'; END IF; "
            "RETURN JSON_VALID(doc); END"
        ))  # fmt: skip
    monkeypatch.setattr(table_sql, "JSON_VALID", "json_valid_like_mysql")


def test_a_server_that_raises_on_deep_documents_does_not_stop_the_table(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    service_config: Callable[..., ServiceConfig],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _mysql_like_json_valid(db_engine, monkeypatch)
    topic = topic_name("mysqldeep")
    create_topics(topic)
    deep, plain = (
        insert_rows(db_engine, topic, [k], payload=p)[0] for k, p in (("a", _nested(150)), ("b", "{}"))
    )
    stats = run_relay(service_config(topic=topic, threshold_seconds=0), db_engine)
    assert stats.published == 2 and statuses(db_engine) == {deep: "SENT", plain: "SENT"}
    assert "the database refused to read a JSON document" in caplog.text and "3157" in caplog.text


def test_json_values_of_deep_documents_are_read_by_the_relay_when_the_server_refuses(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    service_config: Callable[..., ServiceConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _mysql_like_json_valid(db_engine, monkeypatch)
    topic = topic_name("mysqldeep_values")
    create_topics(topic)
    deep_value = _nested(150)
    documents = [
        f'{{"meta": {{"key": "k-deep", "id": 7}}, "Value": {deep_value}}}',
        '{"meta": {"key": "k-plain", "id": 8}, "Value": {"a": "ü"}}',
        '{"Value": {"no": "key"}}',
    ]
    deep, plain, keyless = (insert_rows(db_engine, topic, ["unused"], payload=d)[0] for d in documents)
    config = service_config(
        topic=topic, threshold_seconds=0, retry={"max_attempts": 1},
        columns={"id": "id", "message_id": "message_id", "payload": "payload", "status": "status",
                 "created_at": "created_at", "attempts": "attempts", "last_error": "last_error",
                 "next_attempt_at": "next_attempt_at"},
        json_values={"key": {"path": "$.meta.key"}, "event_type": {"path": "$.meta.id"}, "body": "$.Value"},
    )  # fmt: skip
    stats = run_relay(config, db_engine)
    assert (stats.published, stats.failed) == (2, 1)
    assert statuses(db_engine) == {deep: "SENT", plain: "SENT", keyless: "FAILED"}
    assert "key path $.meta.key not found in columns.payload" in _errors(db_engine)[keyless]
    records = {r.key: r for r in read_all(topic)}
    assert json.loads(records["k-deep"].value) == json.loads(deep_value)
    assert json.loads(records["k-plain"].value) == {"a": "ü"}
    assert (records["k-deep"].headers["outbox-event-type"], records["k-plain"].headers["outbox-event-type"]) == (
        "7", "8",
    )  # fmt: skip
