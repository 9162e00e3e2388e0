"""Tables named as frameworks name them (DotNetCore.CAP's `cap.published`), and names an injection would
try: registered through the YAML forms, checked by `validate` and relayed, on the real MariaDB."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from outbox_relay.checks import CheckReport, check_database
from outbox_relay.config import ServiceConfig
from outbox_relay.config.identifiers import TableName
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import run_relay

pytestmark = pytest.mark.integration


def _report(engine: Engine, config: ServiceConfig) -> CheckReport:
    report = CheckReport(config.service)
    with engine.connect() as conn:
        check_database(conn, config, report)
    return report


@pytest.mark.parametrize(
    "name", ["cap.published", "x`; DROP TABLE outbox_message; --", "Ausgänge 2026", "50% off"]
)
def test_a_table_with_any_name_is_checked_and_relayed(
    db_engine: Engine, topic_name: Callable[[str], str], name: str
) -> None:
    topic = topic_name("anyname")
    create_topics(topic)
    table = TableName(None, name)
    with db_engine.begin() as conn:
        conn.execute(text(f"CREATE TABLE {table.sql} LIKE outbox_message"))
        for n in range(3):
            conn.execute(
                text(f"INSERT INTO {table.sql} (message_id, aggregate_id, event_type, topic, payload) "
                     "VALUES (:m, 'k', 'Evt', :t, '{}')"), {"m": f"m{n}", "t": topic},
            )  # fmt: skip
    config = ServiceConfig.model_validate(
        {"service": "cap", "topic": topic, "table": {"name": name}, "threshold_seconds": 0, "retention": None}
    )
    assert _report(db_engine, config).problems == []
    assert run_relay(config, db_engine).published == 3
    with db_engine.connect() as conn:
        assert conn.execute(text(f"SELECT DISTINCT status FROM {table.sql}")).scalars().all() == ["SENT"]
        assert (
            conn.execute(text("SELECT COUNT(*) FROM outbox_message")).scalar() == 0
        )  # still there, untouched
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == ["m0", "m1", "m2"]


def test_the_missing_index_ddl_for_a_dotted_name_runs(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.execute(text("CREATE TABLE `cap.published` LIKE outbox_message"))
        names = conn.execute(
            text("SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = DATABASE() "
                 "AND TABLE_NAME = 'cap.published' AND INDEX_NAME <> 'PRIMARY'")
        ).scalars()  # fmt: skip
        for index in list(names):
            conn.execute(text(f"ALTER TABLE `cap.published` DROP INDEX `{index}`"))
    config = ServiceConfig.model_validate({"service": "cap", "topic": "t", "table": "`cap.published`"})
    report = _report(db_engine, config)
    assert any("no index starting with (status, id)" in p for p in report.problems)
    fixes = [f for f in report.fixes if f.startswith("ALTER TABLE")]
    assert fixes == ["ALTER TABLE `cap.published` ADD INDEX `ix_cap_published_status_id` (`status`, `id`);"]
    with db_engine.begin() as conn:
        conn.execute(text(fixes[0]))
    assert not any("index" in p for p in _report(db_engine, config).problems)
