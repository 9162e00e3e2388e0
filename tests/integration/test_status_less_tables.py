"""Tables without a status column, on the real MariaDB and broker: an insert-only outbox whose rows are
deleted (or archived) once the broker acknowledged them, and one whose completion time is NULL while a
row is pending (`completion: timestamp`). Rows given up on stay, marked in the attempt table."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.checks import CheckReport, check_database
from outbox_relay.config import ServiceConfig
from outbox_relay.dashboard import Dashboard
from outbox_relay.replay import FAILED, HistoryEntry, Replayer, ReplayFilter, ReplayJob
from outbox_relay.retention import RetentionCleaner
from outbox_relay.store.outbox import OutboxStore
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import run_relay
from tests.readme import service_files

pytestmark = pytest.mark.integration

# An insert-only outbox with a random UUID key (the shape Debezium's outbox event router documents).
INSERT_ONLY = """CREATE TABLE outboxevent (id CHAR(36) NOT NULL PRIMARY KEY,
  aggregatetype VARCHAR(255) NOT NULL, aggregateid VARCHAR(255) NOT NULL, type VARCHAR(255) NOT NULL,
  `timestamp` DATETIME(6) NOT NULL, payload JSON)"""
# Pending while processed_at IS NULL; no status column.
TIMESTAMPED = """CREATE TABLE outbox_ts (id BIGINT AUTO_INCREMENT PRIMARY KEY, aggregate_id VARCHAR(64),
  payload LONGTEXT, created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6), processed_at DATETIME(6) NULL)"""


def _report(engine: Engine, config: ServiceConfig) -> CheckReport:
    report = CheckReport(config.service)
    with engine.connect() as conn:
        check_database(conn, config, report)
    return report


def _apply_index_fix(engine: Engine, config: ServiceConfig, columns: str) -> None:
    """validate asks for the scan index; apply the DDL it prints, then it is satisfied."""
    report = _report(engine, config)
    assert f"no index starting with ({columns}): every scan would read the whole table" in report.problems
    (fix,) = [f for f in report.fixes if f.startswith("ALTER TABLE")]
    with engine.begin() as conn:
        conn.execute(text(fix))
    assert _report(engine, config).problems == []


def _insert_only_config(topic: str, **extra: Any) -> ServiceConfig:
    """The recipe for an insert-only table in docs/services.md (`shipments`), with this test's topic."""
    document = {"service": "shipments", **service_files()["shipments"], "topic": topic}
    return ServiceConfig.model_validate({**document, "retry": {"max_attempts": 1}, "batch_size": 7, **extra})


def _write_events(engine: Engine, keys: list[str], per_key: int) -> dict[str, list[str]]:
    """Rows interleaved across keys with increasing times and random ids; per key, in write order."""
    written: dict[str, list[str]] = defaultdict(list)
    start = datetime(2026, 11, 1, 12, 0, 0)
    with engine.begin() as conn:
        for n in range(per_key * len(keys)):
            key, row_id = keys[n % len(keys)], str(uuid.uuid4())
            conn.execute(
                text("INSERT INTO outboxevent (id, aggregatetype, aggregateid, type, `timestamp`, payload) "
                     "VALUES (:id, 'Order', :k, 'OrderLine', :ts, :p)"),
                {"id": row_id, "k": key, "ts": start + timedelta(milliseconds=n), "p": json.dumps({"n": n})},
            )  # fmt: skip
            written[key].append(row_id)
    return written


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "serial"])
def test_an_insert_only_table_is_relayed_in_order_and_emptied(
    db_engine: Engine, topic_name: Callable[[str], str], pipelining: bool
) -> None:
    topic = topic_name("insert_only")
    create_topics(topic, partitions=3)
    with db_engine.begin() as conn:
        conn.execute(text(INSERT_ONLY))
    config = _insert_only_config(topic, pipelining=pipelining)
    _apply_index_fix(db_engine, config, "timestamp, id")
    written = _write_events(db_engine, ["order-a", "order-b", "order-c", "order-d"], per_key=15)
    with db_engine.begin() as conn:  # no body: fails alone and stays, given up on
        conn.execute(
            text("INSERT INTO outboxevent VALUES ('poison', 'Order', 'order-p', 'Bad', NOW(6), NULL)")
        )

    stats = run_relay(config, db_engine)
    assert (stats.published, stats.failed) == (60, 1)
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT id FROM outboxevent")).scalars().all() == ["poison"]
        failed = conn.execute(
            text("SELECT failed FROM outbox_relay_attempt WHERE row_id = 'poison'")
        ).scalar()
        assert failed == 1
        assert OutboxStore(config).backlog(conn)["rows_by_status"] == {"NEW": 1}
        figures = Dashboard(config).figures(conn)
    assert (figures.new, figures.failed, figures.problems) == (0, 1, [])

    by_key: dict[str, list[str]] = defaultdict(list)
    for record in read_all(topic):
        by_key[str(record.key)].append(record.headers["outbox-message-id"])
    assert by_key == written  # nothing lost, nothing extra, every key in write order
    again = run_relay(config, db_engine)
    assert (again.published, again.failed) == (0, 0)  # the given-up row is not claimed again

    with db_engine.begin() as conn:  # mended, then replayed from the attempt table: sent and deleted
        conn.execute(text("UPDATE outboxevent SET payload = '{\"n\": -1}' WHERE id = 'poison'"))
    replay = ReplayJob(ReplayFilter(frozenset({FAILED})), HistoryEntry("on-call", "mended", "r1"), 10, False)
    assert Replayer(config, db_engine).run(replay).requeued == 1
    assert run_relay(config, db_engine).published == 1
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM outboxevent")).scalar() == 0


def test_an_insert_only_table_can_archive_instead(
    db_engine: Engine, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("insert_only_archive")
    create_topics(topic)
    with db_engine.begin() as conn:
        conn.execute(text(INSERT_ONLY))
        conn.execute(text("CREATE TABLE outboxevent_done LIKE outboxevent"))
    config = _insert_only_config(topic, completion="archive", archive_table="outboxevent_done")
    written = _write_events(db_engine, ["k1", "k2"], per_key=5)
    assert run_relay(config, db_engine).published == 10
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM outboxevent")).scalar() == 0
        archived = set(conn.execute(text("SELECT id FROM outboxevent_done")).scalars())
    assert archived == {i for ids in written.values() for i in ids}


def _timestamp_config(topic: str) -> ServiceConfig:
    return ServiceConfig.model_validate({
        "service": "stamped", "table": "outbox_ts", "topic": topic, "completion": "timestamp",
        "columns": {"id": "id", "key": "aggregate_id", "payload": "payload", "created_at": "created_at",
                    "sent_at": "processed_at", "status": None},
        "retention": {"days": 7, "failed_days": 30}, "retry": {"max_attempts": 1},
    })  # fmt: skip


def _stamped(engine: Engine) -> dict[int, bool]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT id, processed_at IS NOT NULL FROM outbox_ts ORDER BY id"))
        return {int(r[0]): bool(r[1]) for r in rows}


def _insert_stamped(engine: Engine, bodies: list[str | None]) -> None:
    with engine.begin() as conn:
        for n, body in enumerate(bodies):
            conn.execute(text("INSERT INTO outbox_ts (aggregate_id, payload) VALUES (:k, :p)"),
                         {"k": f"k{n % 2}", "p": body})  # fmt: skip


def test_a_completion_column_that_cannot_be_null_is_named(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.execute(
            text(TIMESTAMPED.replace("processed_at DATETIME(6) NULL", "processed_at DATETIME(6) NOT NULL"))
        )
    problems = _report(db_engine, _timestamp_config("t")).problems
    assert (
        "columns.sent_at 'processed_at' is NOT NULL, but with completion: timestamp a pending row holds NULL there; "
        "map the column that stays NULL until the row is sent"
    ) in problems


def test_a_completion_time_column_marks_rows_done(
    db_engine: Engine, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("timestamped")
    create_topics(topic, partitions=1)
    with db_engine.begin() as conn:
        conn.execute(text(TIMESTAMPED))
    config = _timestamp_config(topic)
    _apply_index_fix(db_engine, config, "processed_at, id")
    _insert_stamped(db_engine, ['{"n": 1}', '{"n": 2}', "{not json", '{"n": 4}'])

    stats = run_relay(config, db_engine)
    assert (stats.published, stats.failed) == (3, 1)
    assert _stamped(db_engine) == {1: True, 2: True, 3: False, 4: True}
    _insert_stamped(db_engine, ['{"n": 5}', '{"n": 6}'])
    assert run_relay(config, db_engine).published == 2  # only the new rows: nothing is sent twice
    assert [json.loads(r.value)["n"] for r in sorted(read_all(topic), key=lambda r: r.offset)] == [
        1,
        2,
        4,
        5,
        6,
    ]

    with db_engine.connect() as conn:
        assert OutboxStore(config).backlog(conn)["rows_by_status"] == {"NEW": 1, "SENT": 5}
        figures = Dashboard(config).figures(conn)
    assert (figures.new, figures.failed) == (0, 1)

    with db_engine.begin() as conn:  # two sent rows and the failed one are old
        conn.execute(text("UPDATE outbox_ts SET created_at = NOW(6) - INTERVAL 10 DAY WHERE id IN (1, 2, 3)"))
    cleaned = RetentionCleaner(config, db_engine).run(60)
    assert (cleaned.deleted_terminal, cleaned.deleted_failed) == (2, 0)  # failed rows keep 30 days
    assert set(_stamped(db_engine)) == {3, 4, 5, 6}


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        ({}, "columns.status is null, so 'completion: update' has no status to set"),
        ({"completion": "delete", "statuses": {"new": 0, "sent": 1}}, "has no status values; remove 'statuses'"),
        ({"completion": "delete", "confirmation": {"topic": "r"}}, "but confirmation records outcomes"),
        ({"completion": "timestamp"}, "completion: timestamp records the acknowledgement in columns.sent_at"),
        (
            {"completion": "delete", "columns": {"id": "id", "payload": "p", "status": None, "attempts": "a",
                                                 "last_error": "e", "next_attempt_at": "n"}},
            "but columns.attempts/last_error/next_attempt_at records outcomes",
        ),
    ],
)  # fmt: skip
def test_what_a_status_less_table_cannot_do_is_named(extra: dict[str, Any], words: str) -> None:
    document = {
        "service": "s",
        "topic": "t",
        "columns": {"id": "id", "payload": "p", "status": None},
        **extra,
    }
    with pytest.raises(ValueError) as caught:
        ServiceConfig.model_validate(document)
    assert words in str(caught.value)
