"""A table keyed by random UUIDs (claim order by primary key would be random) ordered by its creation
time plus id: per-key order holds across batches (pipelined and serial), a chunked backfill resumes in
that order, and validate asks for the index the ordered scan needs — on the real MariaDB and broker."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.backfill import Backfiller, BackfillJob
from outbox_relay.checks import CheckReport, check_database
from outbox_relay.config import ServiceConfig
from outbox_relay.health import HealthCheck
from outbox_relay.models import Window
from outbox_relay.relay.engine import OutboxRelay
from outbox_relay.replay import HistoryEntry
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import relay_publisher, run_relay

pytestmark = pytest.mark.integration

DDL = """CREATE TABLE uuid_outbox (
  id CHAR(36) PRIMARY KEY, message_id VARCHAR(64) NOT NULL, aggregate_id VARCHAR(64), topic VARCHAR(255),
  payload LONGTEXT, status VARCHAR(16) NOT NULL DEFAULT 'NEW', created_at DATETIME(6) NOT NULL,
  INDEX ix_status_created_id (status, created_at, id))"""
COLUMNS = {"id": "id", "message_id": "message_id", "key": "aggregate_id", "topic": "topic", "payload": "payload",
           "status": "status", "created_at": "created_at"}  # fmt: skip


def _insert(engine: Engine, topic: str, rows: int) -> list[str]:
    """Rows of three keys, one per millisecond; their UUIDs sort in no particular order."""
    ids = []
    with engine.begin() as conn:
        for n in range(rows):
            message_id = f"m{n:03d}"
            conn.execute(
                text("INSERT INTO uuid_outbox (id, message_id, aggregate_id, topic, payload, created_at) VALUES "
                     "(:id, :m, :k, :t, '{}', NOW(6) - INTERVAL :age MICROSECOND)"),
                {"id": str(uuid.uuid4()), "m": message_id, "k": f"k{n % 3}", "t": topic, "age": (rows - n) * 1000},
            )  # fmt: skip
            ids.append(message_id)
    return ids


def _config(topic: str, **fields: Any) -> ServiceConfig:
    return ServiceConfig.model_validate({
        "service": "uuids", "table": "uuid_outbox", "topic": topic, "columns": COLUMNS, "retention": None,
        "statuses": {"new": "NEW", "sent": "SENT", "confirmed": None, "failed": "FAILED"},
        "order_by": ["created_at"], "batch_size": 7, **fields,
    })  # fmt: skip


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "serial"])
def test_rows_go_out_in_creation_order_per_key(
    db_engine: Engine, topic_name: Callable[[str], str], pipelining: bool
) -> None:
    topic = topic_name("uuid_order")
    create_topics(topic, partitions=3)
    with db_engine.begin() as conn:
        conn.execute(text(DDL))
    written = _insert(db_engine, topic, 60)
    config = _config(topic, pipelining=pipelining)
    report = CheckReport("uuids")
    with db_engine.connect() as conn:
        check_database(conn, config, report)
    assert not [p for p in report.problems if "index" in p], report.problems
    stats = run_relay(config, db_engine)
    assert stats.published == 60 and stats.batches >= 9
    assert stats.last_position is not None and stats.last_position[-1] == stats.last_row_id
    records = read_all(topic)
    for key in ("k0", "k1", "k2"):
        sent = [r.headers["outbox-message-id"] for r in records if r.key == key]
        assert sent == [m for n, m in enumerate(written) if f"k{n % 3}" == key]


def test_validate_wants_the_ordered_index(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.execute(text(DDL.replace(",\n  INDEX ix_status_created_id (status, created_at, id)", "")))
    report = CheckReport("uuids")
    with db_engine.connect() as conn:
        check_database(conn, _config("t"), report)
    assert any("no index starting with (status, created_at, id)" in p for p in report.problems)
    assert (
        "ALTER TABLE `uuid_outbox` ADD INDEX `ix_uuid_outbox_status_created_at_id` "
        "(`status`, `created_at`, `id`);" in report.fixes
    )


def test_a_chunked_backfill_goes_on_in_claim_order(
    db_engine: Engine, topic_name: Callable[[str], str]
) -> None:

    topic = topic_name("uuid_backfill")
    create_topics(topic)
    with db_engine.begin() as conn:
        conn.execute(text(DDL))
        now = conn.execute(text("SELECT NOW(6)")).scalar_one()
    written = _insert(db_engine, topic, 30)
    config = _config(topic)
    relay = OutboxRelay(config, db_engine, relay_publisher(config))
    window = Window(now - timedelta(minutes=5), now + timedelta(minutes=5))
    # max_rows_per_second: one batch per chunk, each chunk going on after the last one's position
    request = BackfillJob(window, HistoryEntry("t", "order", "run"), max_rows_per_second=100_000)
    report = Backfiller(config, db_engine, relay, sleep=lambda s: None).run(request)
    assert report.published == 30 and report.chunks >= 2  # chunks go on from the last position
    sent = [r.headers["outbox-message-id"] for r in read_all(topic)]
    for key in ("k0", "k1", "k2"):
        mine = [m for n, m in enumerate(written) if f"k{n % 3}" == key]
        assert [m for m in sent if m in mine] == mine


def test_the_next_rows_age_follows_claim_order(db_engine: Engine) -> None:

    with db_engine.begin() as conn:
        conn.execute(text(DDL))
        for row_id, age in (("00000000-new", 0), ("ffffffff-old", 7200)):  # primary-key order: new first
            conn.execute(
                text("INSERT INTO uuid_outbox (id, message_id, aggregate_id, topic, payload, created_at) "
                     "VALUES (:id, :id, 'k', 't', '{}', NOW(6) - INTERVAL :age SECOND)"),
                {"id": row_id, "age": age},
            )  # fmt: skip
    with db_engine.connect() as conn:
        figures = HealthCheck(_config("t")).figures(conn)
    assert figures["backlog"] == 2 and 7190 < (figures["oldest_new_age_seconds"] or 0) < 7300
