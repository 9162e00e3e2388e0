"""Which run sent a row, kept as ranges of row ids per batch (``outbox_relay_sent_range``), against MariaDB and
the broker: the relay writes a record per batch instead of the run id in every row, rows sent again are cut
out of older records, scattered batches and tables without the records table keep the per-row column, and
explain, the row history and retention read or tidy the records."""

from __future__ import annotations

import logging
from collections.abc import Callable
from itertools import pairwise

import pytest
from sqlalchemy import Engine, text

from outbox_relay.checks import CheckReport, check_database
from outbox_relay.config import ServiceConfig
from outbox_relay.explain import Explainer
from outbox_relay.store.outbox import OutboxStore
from outbox_relay.store.sent_ranges import MAX_RANGES
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, run_relay, sent_by

pytestmark = pytest.mark.integration


@pytest.fixture
def config(service_config: Callable[..., ServiceConfig], topic_name: Callable[[str], str]) -> ServiceConfig:
    topic = topic_name("ranges")
    create_topics(topic)
    return service_config(topic=topic, batch_size=20)


def _records(engine: Engine) -> list[tuple[int, int, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text(
                "SELECT first_row_id, last_row_id, run_id FROM outbox_relay_sent_range ORDER BY first_row_id"
            )
        )
        return [(int(f), int(last), str(run)) for f, last, run in rows]


def _ids(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return [int(i) for i in conn.execute(text("SELECT id FROM outbox_message ORDER BY id")).scalars()]


def _run_id_column(engine: Engine) -> set[object]:
    with engine.connect() as conn:
        return set(
            conn.execute(text("SELECT relay_run_id FROM outbox_message WHERE status = 'SENT'")).scalars()
        )


def test_a_run_records_a_range_per_batch_and_leaves_the_rows_run_id_null(
    db_engine: Engine, config: ServiceConfig
) -> None:
    messages = insert_rows(db_engine, config.topic or "", [f"k{i % 7}" for i in range(50)])
    assert run_relay(config, db_engine, run_id="scheduled__1").published == 50
    ids = _ids(db_engine)
    assert _records(db_engine) == [
        (ids[0], ids[19], "scheduled__1"),
        (ids[20], ids[39], "scheduled__1"),
        (ids[40], ids[49], "scheduled__1"),
    ]
    assert _run_id_column(db_engine) == {None}
    assert set(sent_by(db_engine, config).values()) == {"scheduled__1"}
    with db_engine.connect() as conn:
        explained = Explainer(config).explain(conn, messages[25])
    assert explained is not None and "by relay run scheduled__1" in explained.why


def test_rows_sent_again_are_cut_out_of_the_older_record(db_engine: Engine, config: ServiceConfig) -> None:
    messages = insert_rows(db_engine, config.topic or "", [f"k{i}" for i in range(20)])
    run_relay(config, db_engine, run_id="scheduled__1")
    ids = _ids(db_engine)
    again = [*ids[5:8], ids[12]]
    with db_engine.begin() as conn:  # as a requeue leaves them: NEW again, to be sent by the next run
        conn.execute(
            text(f"UPDATE outbox_message SET status = 'NEW' WHERE id IN ({','.join(map(str, again))})")
        )
    assert run_relay(config, db_engine, run_id="scheduled__2").published == 4

    records = _records(db_engine)
    assert records == [
        (ids[0], ids[4], "scheduled__1"),
        (ids[5], ids[7], "scheduled__2"),
        (ids[8], ids[11], "scheduled__1"),
        (ids[12], ids[12], "scheduled__2"),
        (ids[13], ids[19], "scheduled__1"),
    ]
    assert all(a[1] < b[0] for a, b in pairwise(records))  # disjoint
    by = sent_by(db_engine, config)
    assert [by[m] for m in messages] == ["scheduled__2" if i in again else "scheduled__1" for i in ids]


def test_a_scattered_batch_writes_the_run_id_into_each_row(db_engine: Engine, config: ServiceConfig) -> None:
    insert_rows(db_engine, config.topic or "", [f"k{i}" for i in range(2 * (MAX_RANGES + 2))])
    with db_engine.begin() as conn:  # every other row already sent: the batch's ids scatter
        conn.execute(text("UPDATE outbox_message SET status = 'SENT' WHERE id % 2 = 0"))
    wide = config.model_copy(update={"batch_size": 100})
    assert run_relay(wide, db_engine, run_id="scheduled__scattered").published == MAX_RANGES + 2
    assert _records(db_engine) == []
    with db_engine.connect() as conn:
        runs = (
            conn.execute(text("SELECT DISTINCT relay_run_id FROM outbox_message WHERE id % 2 = 1"))
            .scalars()
            .all()
        )
    assert runs == ["scheduled__scattered"]


def test_without_the_records_table_the_run_id_goes_into_each_row_and_validate_says_so(
    db_engine: Engine, config: ServiceConfig, caplog: pytest.LogCaptureFixture
) -> None:
    with db_engine.begin() as conn:
        conn.execute(text("DROP TABLE outbox_relay_sent_range"))
    insert_rows(db_engine, config.topic or "", ["a", "b", "c"])
    with caplog.at_level(logging.WARNING):
        assert run_relay(config, db_engine, run_id="scheduled__1").published == 3
    assert _run_id_column(db_engine) == {"scheduled__1"}
    assert set(sent_by(db_engine, config).values()) == {"scheduled__1"}
    assert "outbox_relay_sent_range is missing" in caplog.text
    report = CheckReport(config.service)
    with db_engine.connect() as conn:
        check_database(conn, config, report)
    assert report.ok, report.problems  # the relay works without it: a note with the command, not a problem
    assert any("outbox_relay_sent_range is missing" in n and "ddl" in n for n in report.notes), report.notes


def test_retention_forgets_the_records_of_rows_that_are_gone(
    db_engine: Engine, config: ServiceConfig
) -> None:
    insert_rows(db_engine, config.topic or "", [f"k{i}" for i in range(50)])
    run_relay(config, db_engine, run_id="scheduled__1")
    ids = _ids(db_engine)
    with db_engine.begin() as conn:  # retention deleted the first 25 rows
        conn.execute(text("DELETE FROM outbox_message WHERE id <= :last"), {"last": ids[24]})
    store = OutboxStore(config)
    with db_engine.begin() as conn:
        assert store.retention.forget_sent_ranges(conn, 100) == 1  # rows 1-20; 21-40 still has rows
    assert [r[:2] for r in _records(db_engine)] == [(ids[20], ids[39]), (ids[40], ids[49])]
    with db_engine.begin() as conn:
        conn.execute(text("DELETE FROM outbox_message"))
    with db_engine.begin() as conn:  # an empty table tells nothing yet: the records stay until rows come
        assert store.retention.forget_sent_ranges(conn, 100) == 0
