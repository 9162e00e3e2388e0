"""What happens to an acknowledged row: `completion: delete` removes it in the transaction that would mark
it SENT; `archive` moves it (status SENT, sent_at set) into a table of the same shape. A row that fails
stays, with its status, as with `update`. On the real MariaDB and broker."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.backfill import Backfiller, BackfillJob
from outbox_relay.checks import CheckReport, check_database
from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.models import Window
from outbox_relay.replay import HistoryEntry
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, run_relay

pytestmark = pytest.mark.integration


def _rows(engine: Engine, table: str) -> dict[str, tuple[Any, ...]]:
    with engine.connect() as conn:
        found = conn.execute(text(f"SELECT message_id, status, sent_at IS NOT NULL FROM {table}")).all()
    return {str(r[0]): (r[1], bool(r[2])) for r in found}


def _problems(engine: Engine, config: ServiceConfig) -> CheckReport:
    report = CheckReport(config.service)
    with engine.connect() as conn:
        check_database(conn, config, report)
    return report


def _poisoned(engine: Engine, topic: str) -> tuple[list[str], str]:
    good = insert_rows(engine, topic, ["a", "b", "c"])
    (bad,) = insert_rows(engine, topic, ["d"], payload="{not json")
    return good, bad


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "serial"])
def test_delete_removes_what_the_broker_acknowledged(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    service_config: Callable[..., ServiceConfig],
    pipelining: bool,
) -> None:
    topic = topic_name("delete_mode")
    create_topics(topic)
    good, bad = _poisoned(db_engine, topic)
    config = service_config(
        topic=topic, completion="delete", retry={"max_attempts": 1}, pipelining=pipelining
    )
    stats = run_relay(config, db_engine)
    assert (stats.published, stats.failed) == (3, 1)
    assert _rows(db_engine, "outbox_message") == {bad: ("FAILED", False)}
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(good)
    with pytest.raises(ConfigurationError, match="keeps no SENT rows to republish"):
        Backfiller(config, db_engine, None).check(
            BackfillJob(
                Window(datetime(2026, 1, 1), datetime(2026, 1, 2)),
                HistoryEntry("t", "r", "run"),
                republish=True,
            )
        )


def test_archive_moves_sent_rows_to_a_table_of_the_same_shape(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("archive_mode")
    create_topics(topic)
    good, bad = _poisoned(db_engine, topic)
    config = service_config(
        topic=topic, completion="archive", archive_table="outbox_message_archive", retry={"max_attempts": 1}
    )
    report = _problems(db_engine, config)
    assert "archive_table outbox_message_archive does not exist" in report.problems
    (create,) = [f for f in report.fixes if f.startswith("CREATE TABLE")]
    assert create == "CREATE TABLE `outbox_message_archive` LIKE `outbox_message`;"
    with db_engine.begin() as conn:
        conn.execute(text(create))
    assert _problems(db_engine, config).problems == []
    stats = run_relay(config, db_engine)
    assert (stats.published, stats.failed) == (3, 1)
    assert _rows(db_engine, "outbox_message") == {bad: ("FAILED", False)}
    assert _rows(db_engine, "outbox_message_archive") == {m: ("SENT", True) for m in good}


def test_modes_that_keep_no_sent_rows_refuse_what_needs_them() -> None:
    base: dict[str, Any] = {"service": "s", "topic": "t"}
    for extra, words in [
        (
            {"completion": "delete", "confirmation": {"topic": "r"}},
            "keeps no SENT rows in the table, which confirmation",
        ),
        ({"completion": "archive"}, "completion: archive needs archive_table"),
        ({"archive_table": "a"}, "archive_table needs completion: archive"),
    ]:
        with pytest.raises(ValueError) as caught:
            ServiceConfig.model_validate({**base, **extra})
        assert words in str(caught.value)
