"""The Outbox page's figures, lists and row detail against the real MariaDB: each figure equals what plain
SQL says, filters and paging select the right rows, previews are bounded."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.dashboard import Dashboard, RowSearch
from outbox_relay.models import UNCONFIRMED
from outbox_relay.store.dashboard import PREVIEW_CHARS
from tests.integration.outbox_rows import insert_rows

pytestmark = pytest.mark.integration


def _set(engine: Engine, message_ids: list[str], assignments: str) -> None:
    with engine.begin() as conn:
        for mid in message_ids:
            conn.execute(text(f"UPDATE outbox_message SET {assignments} WHERE message_id = :m"), {"m": mid})


def _scalar(engine: Engine, sql: str) -> object:
    with engine.connect() as conn:
        return conn.execute(text(sql)).scalar()


def test_figures_equal_what_sql_says(db_engine: Engine, service_config: Callable[..., ServiceConfig]) -> None:
    config = service_config(topic="t", confirmation={"topic": "t.results"})
    (waiting,) = insert_rows(db_engine, "t", ["k"], age_seconds=1200)
    new = insert_rows(db_engine, "t", ["a", "b"], age_seconds=600)
    insert_rows(db_engine, "t", ["k"])  # held back behind `waiting`
    sent = insert_rows(db_engine, "t", ["c", "d", "e"], age_seconds=300)
    failed = insert_rows(db_engine, "t", ["f", "g", "h"])
    _set(db_engine, [waiting], "attempts = 1, last_error = 'x', next_attempt_at = NOW(6) + INTERVAL 1 HOUR")
    _set(db_engine, sent, "status = 'SENT', sent_at = NOW(6) - INTERVAL 2 MINUTE")
    _set(db_engine, sent[:1], "status = 'CONFIRMED', confirmed_at = NOW(6)")
    _set(db_engine, failed[:2], "status = 'FAILED', attempts = 5, last_error = 'schema v2 rejected'")
    _set(db_engine, failed[2:], "status = 'FAILED', attempts = 5, last_error = 'topic does not exist'")

    with db_engine.connect() as conn:
        figures = Dashboard(config).figures(conn)
    assert figures.problems == []
    assert figures.rows_by_status == {"NEW": 4, "SENT": 2, "CONFIRMED": 1, "FAILED": 3}
    assert (figures.new, figures.held_back, figures.unconfirmed, figures.failed) == (4, 2, 2, 3)
    # The next row the relay sends (primary-key order) is not the waiting one (1200 s old) but `new[0]`.
    expected = _scalar(db_engine, f"SELECT TIMESTAMPDIFF(SECOND, created_at, NOW(6)) FROM outbox_message "
                                  f"WHERE message_id = '{new[0]}'")  # fmt: skip
    assert figures.oldest_eligible_new_seconds == expected
    assert figures.oldest_unconfirmed_seconds is not None and figures.oldest_unconfirmed_seconds >= 300
    assert figures.top_errors == [("schema v2 rejected", 2), ("topic does not exist", 1)]
    assert sum((figures.published_per_minute or {}).values()) == 3
    assert sum((figures.confirmed_per_minute or {}).values()) == 1


def test_lists_filter_page_and_detail(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    config = service_config(topic="t", confirmation={"topic": "t.results"})
    failed = insert_rows(db_engine, "t", ["a", "a", "b", "c"], payload={"blob": "x" * (3 * PREVIEW_CHARS)})
    sent = insert_rows(db_engine, "t", ["d"])
    _set(db_engine, failed, "status = 'FAILED', attempts = 5, last_error = 'broker said 50%_off'")
    _set(db_engine, failed[3:], "last_error = 'other'")
    _set(db_engine, sent, "status = 'SENT'")
    dashboard = Dashboard(config)
    with db_engine.connect() as conn:
        everything = dashboard.rows(conn, RowSearch())
        assert [r.message_id for r in everything] == failed[::-1]  # newest first
        first_page = dashboard.rows(conn, RowSearch(), limit=2)
        second_page = dashboard.rows(conn, RowSearch(), before=first_page[-1].row_id, limit=2)
        assert [r.message_id for r in first_page + second_page] == failed[::-1]
        assert [r.message_id for r in dashboard.rows(conn, RowSearch(key="a"))] == failed[1::-1]
        # `%` and `_` in the error text are matched literally.
        assert len(dashboard.rows(conn, RowSearch(error_text="50%_off"))) == 3
        assert dashboard.rows(conn, RowSearch(error_text="50%x")) == []
        assert [r.message_id for r in dashboard.rows(conn, RowSearch(kind=UNCONFIRMED))] == sent
        detail = dashboard.row(conn, failed[0])
        assert dashboard.row(conn, "no-such-row") is None
    assert detail is not None
    assert detail.explanation["state"] == "failed" and detail.content.payload_preview is not None
    assert len(detail.content.payload_preview) == PREVIEW_CHARS
    assert detail.content.payload_chars is not None and detail.content.payload_chars > 3 * PREVIEW_CHARS


def test_a_missing_table_is_a_problem_not_a_crash(
    service_config: Callable[..., ServiceConfig], db_engine: Engine
) -> None:
    config = service_config(topic="t", table="no_such_table")
    with db_engine.connect() as conn:
        figures = Dashboard(config).figures(conn)
    assert any("no_such_table does not exist" in p for p in figures.problems), figures.problems
