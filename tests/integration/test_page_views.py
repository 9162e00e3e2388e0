"""The Outbox page's newer views against the real MariaDB: the last hour's minute series (failed rows and
the backlog rebuilt from the rows), search by message id, row id and key (with and without an index on
the key), the count behind "select all matching", and a consumer inbox whose duplicate count is missing."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.config.settings import Inbox
from outbox_relay.dashboard import Dashboard, RowSearch
from outbox_relay.inbox_view import InboxView
from outbox_relay.store.dashboard import KEY_SCAN_ROWS
from outbox_relay.store.inbox import InboxTable
from tests.integration.outbox_rows import insert_rows

pytestmark = pytest.mark.integration


def _set(engine: Engine, message_id: str, assignments: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE outbox_message SET {assignments} WHERE message_id = :m"), {"m": message_id}
        )


def _minute(now: datetime, minutes_ago: int) -> str:
    return (now.replace(second=0, microsecond=0) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%d %H:%M")


def test_the_hour_in_minutes_has_failed_rows_and_the_backlog_at_each_minute(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    config = service_config(topic="t", confirmation={"topic": "t.results"})
    old_pending, sent, pending, failed = insert_rows(db_engine, "t", ["a", "b", "c", "d"])
    _set(db_engine, old_pending, "created_at = NOW(6) - INTERVAL 2 HOUR")
    ten_ago = "NOW(6) - INTERVAL 10 MINUTE"
    _set(db_engine, sent, f"created_at = NOW(6) - INTERVAL 30 MINUTE, status = 'SENT', sent_at = {ten_ago}, "
                          f"updated_at = {ten_ago}")  # fmt: skip
    _set(db_engine, pending, "created_at = NOW(6) - INTERVAL 20 MINUTE")
    _set(db_engine, failed, "created_at = NOW(6) - INTERVAL 50 MINUTE, status = 'FAILED', attempts = 5, "
                            "updated_at = NOW(6) - INTERVAL 3 MINUTE")  # fmt: skip
    with db_engine.connect() as conn:
        now = conn.execute(text("SELECT NOW()")).scalar_one()
        assert Dashboard(config).figures(conn).activity.minutes == []  # the overview does not draw it
        activity = Dashboard(config).figures(conn, with_activity=True).activity
    assert len(activity.minutes) == 60 and activity.minutes[-1] == _minute(now, 0)
    at = {m: i for i, m in enumerate(activity.minutes)}
    assert activity.failed is not None and sum(activity.failed) == 1
    assert activity.failed[at[_minute(now, 3)]] == 1
    assert activity.published is not None and activity.published[at[_minute(now, 10)]] == 1
    backlog = activity.backlog
    assert backlog is not None and activity.notes == []
    # The 2-hour-old row all along; the sent row from 30 to 10 minutes ago; the pending one from 20 on;
    # the FAILED row (never sent) from 50 minutes ago until it failed 3 minutes ago.
    assert [backlog[at[_minute(now, ago)]] for ago in (40, 25, 15, 5, 0)] == [2, 3, 4, 3, 2]


def test_search_finds_a_row_by_message_id_or_row_id_and_the_rows_of_a_key(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    config = service_config(topic="t")
    first, _, third, fourth = insert_rows(db_engine, "t", ["k", "other", "k", "k"])
    _set(db_engine, first, "status = 'SENT'")
    _set(db_engine, third, "status = 'FAILED', attempts = 5, last_error = 'no'")
    dashboard = Dashboard(config)
    with db_engine.connect() as conn:
        by_id = dashboard.search(conn, f"  {third} ")
        row_id = conn.execute(
            text("SELECT id FROM outbox_message WHERE message_id = :m"), {"m": fourth}
        ).scalar()
        by_row_id = dashboard.search(conn, str(row_id))
        by_key = dashboard.search(conn, "k")
        nothing = dashboard.search(conn, "nobody")
    assert by_id.row_message_id == third and by_id.key_rows == []
    assert by_row_id.row_message_id == fourth
    assert [(r.message_id, r.status) for r in by_key.key_rows] == [
        (fourth, "NEW"),
        (third, "FAILED"),
        (first, "SENT"),
    ]
    assert by_key.row_message_id is None and by_key.scanned_newest == KEY_SCAN_ROWS  # no index on the key
    assert (nothing.row_message_id, nothing.key_rows) == (None, [])

    with db_engine.begin() as conn:
        conn.execute(text("ALTER TABLE outbox_message ADD INDEX ix_key (aggregate_id)"))
    with db_engine.connect() as conn:
        indexed = Dashboard(config).search(conn, "k")
    assert indexed.key_rows == by_key.key_rows and indexed.scanned_newest is None


def test_the_count_behind_select_all_matching(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    config = service_config(topic="t")
    rows = insert_rows(db_engine, "t", ["a", "a", "a", "b"])
    for mid in rows:
        _set(db_engine, mid, "status = 'FAILED', attempts = 5, last_error = 'x'")
    dashboard = Dashboard(config)
    with db_engine.connect() as conn:
        assert dashboard.count_matching(conn, RowSearch()) == 4
        assert dashboard.count_matching(conn, RowSearch(key="a")) == 3
        assert dashboard.queries.count_matching(conn, RowSearch(key="a"), up_to=2) == 2  # bounded
        assert dashboard.count_matching(conn, RowSearch(kind="unconfirmed")) == 0


def test_an_inbox_without_its_duplicate_table_is_read_and_said_so(
    db_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    with db_engine.begin() as conn:
        conn.execute(text("DROP TABLE inbox_duplicate"))
        inbox = InboxTable("billing")
        assert inbox.record_receipt(conn, "m1", "t", 0, 1)
        inbox.record_result(conn, "m1", "SUCCESS", None)
        assert not inbox.record_receipt(conn, "m1", "t", 0, 2)
        with caplog.at_level(logging.WARNING):
            inbox.record_duplicate(conn, "m1")  # the message's transaction goes on
            inbox.record_duplicate(conn, "m1")
    assert [r.getMessage() for r in caplog.records].count(
        "skipped redeliveries are not counted: table inbox_duplicate is missing (create it with "
        "'outbox-relay ddl --inbox --apply')"
    ) == 1
    with db_engine.connect() as conn:
        figures = InboxView(Inbox(consumer="billing"), "outbox_db").figures(conn)
        missing = InboxView(Inbox(consumer="billing", table="no_such_inbox"), "outbox_db").figures(conn)
    assert figures.processed == 1 and figures.duplicates_skipped is None and figures.readable
    assert figures.problems == [
        "redeliveries are not counted: create inbox_duplicate with 'outbox-relay ddl --inbox --apply'"
    ]
    assert (
        not missing.readable and "inbox no_such_inbox on 'outbox_db' could not be read" in missing.problems[0]
    )
