"""Eventuate Tram's outbox (`message.creation_time`: epoch milliseconds in a BIGINT), registered unchanged:
validate names the type mismatch and its fix, and with ``created_at_unit`` the threshold, backfill
windows, retention and the Outbox page's ages all read the numbers as times, on the real MariaDB."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.checks import CheckReport, check_database
from outbox_relay.config import ServiceConfig
from outbox_relay.dashboard import Dashboard
from outbox_relay.models import Window
from outbox_relay.retention import RetentionCleaner
from outbox_relay.store.outbox import OutboxStore
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import run_relay

pytestmark = pytest.mark.integration

EVENTUATE_DDL = """
CREATE TABLE message (
  id VARCHAR(255) PRIMARY KEY,
  destination LONGTEXT NOT NULL,
  headers LONGTEXT NOT NULL,
  payload LONGTEXT NOT NULL,
  published SMALLINT DEFAULT 0,
  message_partition SMALLINT,
  creation_time BIGINT,
  INDEX ix_message_published_id (published, id)
)
"""
COLUMNS = {"id": "id", "message_id": "id", "topic": "destination", "payload": "payload", "status": "published",
           "created_at": "creation_time"}  # fmt: skip


def _config(topic: str, **fields: Any) -> ServiceConfig:
    document = {"service": "eventuate", "table": "message", "topic": topic, "columns": COLUMNS,
                "statuses": {"new": 0, "sent": 1, "confirmed": None, "failed": None},
                "retention": {"days": 1, "failed_days": 1}, **fields}  # fmt: skip
    return ServiceConfig.model_validate(document)


def _insert(engine: Engine, topic: str, message_id: str, age_seconds: float, unit: int = 1000) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO message (id, destination, headers, payload, creation_time) "
                 "VALUES (:id, :t, '{}', '{\"n\": 1}', :created)"),
            {"id": message_id, "t": topic, "created": int((time.time() - age_seconds) * unit)},
        )  # fmt: skip


def _problems(engine: Engine, config: ServiceConfig) -> list[str]:
    report = CheckReport(config.service)
    with engine.connect() as conn:
        check_database(conn, config, report)
    return report.problems


def _published(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        return {str(i): int(p) for i, p in conn.execute(text("SELECT id, published FROM message"))}


def test_epoch_milliseconds_are_read_as_times(db_engine: Engine, topic_name: Callable[[str], str]) -> None:
    topic = topic_name("eventuate")
    create_topics(topic)
    with db_engine.begin() as conn:
        conn.execute(text(EVENTUATE_DDL))
    _insert(db_engine, topic, "a-old", age_seconds=2 * 86400)
    _insert(db_engine, topic, "b-recent", age_seconds=7200)
    _insert(db_engine, topic, "c-new", age_seconds=1)

    assumed = _config(topic)  # without created_at_unit: refused, with the fix
    (problem,) = [p for p in _problems(db_engine, assumed) if "creation_time" in p]
    assert "'creation_time' is bigint" in problem and "set created_at_unit: epoch_ms" in problem
    config = _config(topic, created_at_unit="epoch_ms", threshold_seconds=3600)
    assert _problems(db_engine, config) == []
    assert [p for p in _problems(db_engine, _config(topic, created_at_unit="epoch_s")) if "epoch" in p] == []

    store = OutboxStore(config)
    with db_engine.connect() as conn:
        oldest = Dashboard(config).figures(conn).oldest_eligible_new_seconds
        now = conn.execute(text("SELECT NOW()")).scalar()
        window = Window(now - timedelta(hours=3), now - timedelta(hours=1))
        in_window = store.backfills.counts(conn, window)
    assert oldest is not None and 2 * 86400 - 60 < oldest < 2 * 86400 + 60
    assert in_window == {"0": 1, "given_up": 0}  # b-recent only

    assert run_relay(config, db_engine).published == 2  # the row created a second ago waits an hour
    assert _published(db_engine) == {"a-old": 1, "b-recent": 1, "c-new": 0}

    stats = RetentionCleaner(config, db_engine).run(60)
    assert stats.deleted_terminal == 1 and set(_published(db_engine)) == {"b-recent", "c-new"}


def test_a_text_time_column_and_written_times_of_the_wrong_type_are_named(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.execute(text("CREATE TABLE odd (id BIGINT PRIMARY KEY, status INT, made VARCHAR(40), sent BIGINT, "
                          "due INT, INDEX ix (status, id))"))  # fmt: skip
    columns = {"id": "id", "status": "status", "created_at": "made", "sent_at": "sent", "payload": "made",
               "not_before": "due"}  # fmt: skip
    config = ServiceConfig.model_validate(
        {"service": "odd", "table": "odd", "topic": "t", "columns": columns, "retention": None,
         "statuses": {"new": 0, "sent": 1, "confirmed": None, "failed": None}}
    )  # fmt: skip
    problems = _problems(db_engine, config)
    assert any(
        "columns.created_at 'made' is varchar, which cannot hold a creation time" in p for p in problems
    )
    assert any("columns.sent_at 'sent' is bigint: the relay writes the time into it" in p for p in problems)
    assert any("columns.not_before 'due' is int: the relay compares it with the database clock" in p
               for p in problems)  # fmt: skip
    words = config.model_copy(
        update={"statuses": config.statuses.model_copy(update={"new": "NEW", "sent": "SENT"})}
    )
    assert any("columns.status 'status' is int but statuses are words ('NEW', 'SENT')" in p
               for p in _problems(db_engine, words))  # fmt: skip
    assert not any("columns.status" in p for p in problems)
    numeric_body = config.model_copy(
        update={"columns": config.columns.model_copy(update={"payload": "sent"})}
    )
    assert any("columns.payload 'sent' is bigint, which cannot hold a message body" in p
               for p in _problems(db_engine, numeric_body))  # fmt: skip
    wrong_unit = config.model_copy(update={"created_at_unit": "epoch_ms"})
    assert any("created_at 'made' is varchar" in p for p in _problems(db_engine, wrong_unit))
