"""`audit` against the real broker and MariaDB: the topic read back and compared with the table."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from confluent_kafka import Consumer
from sqlalchemy import Engine, text

from outbox_relay.audit import Auditor, AuditReport
from outbox_relay.config import ServiceConfig
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, run_relay
from tests.stack import BOOTSTRAP

pytestmark = pytest.mark.integration


def _audit(engine: Engine, config: ServiceConfig, since: datetime) -> AuditReport:
    consumer = Consumer(
        {"bootstrap.servers": BOOTSTRAP, "group.id": f"audit-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    try:
        return Auditor(config).run(engine, consumer, since)
    finally:
        consumer.close()


def _db_now(engine: Engine) -> datetime:
    with engine.connect() as conn:
        value: datetime = conn.execute(text("SELECT NOW(6)")).scalar_one()
    return value


def test_a_clean_window_then_each_kind_of_trouble_is_found(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("audit")
    create_topics(topic)
    since = _db_now(db_engine) - timedelta(seconds=1)
    config = service_config(topic=topic)
    ids = insert_rows(db_engine, topic, ["a", "a", "b", "c"])
    assert run_relay(config, db_engine).published == 4

    clean = _audit(db_engine, config, since)
    assert clean.ok and clean.rows == 4 and clean.on_topic == 4
    assert set(clean.counts.values()) == {0}, clean.counts

    (lost,) = insert_rows(db_engine, topic, ["d"])
    with db_engine.begin() as conn:  # marked sent, never published: what must never happen
        conn.execute(text("UPDATE outbox_message SET status = 'SENT' WHERE message_id = :m"), {"m": lost})
        conn.execute(text("UPDATE outbox_message SET status = 'NEW' WHERE message_id = :m"), {"m": ids[3]})
    found = _audit(db_engine, config, since)
    assert (
        not found.ok
        and found.counts["sent_not_on_topic"] == 1
        and found.listed["sent_not_on_topic"] == [lost]
    )
    assert found.counts["on_topic_not_marked"] == 1 and found.listed["on_topic_not_marked"] == [ids[3]]

    assert run_relay(config, db_engine).published == 1  # the unmarked row goes out again: a duplicate
    again = _audit(db_engine, config, since)
    assert again.counts["duplicates"] == 1 and again.listed["duplicates"] == [ids[3]]
    assert again.counts["order_violations"] == 0


def test_topics_the_rows_name_themselves_are_read_back_too(
    db_engine: Engine, topic_name: Callable[[str], str]
) -> None:
    first, second = topic_name("audit_rows1"), topic_name("audit_rows2")
    create_topics(first, second)
    since = _db_now(db_engine) - timedelta(seconds=1)
    config = ServiceConfig.model_validate({"service": "s", "topic": None, "topics": []})
    insert_rows(db_engine, first, ["a"])
    insert_rows(db_engine, second, ["b"])
    (lost,) = insert_rows(db_engine, second, ["c"])
    (never,) = insert_rows(db_engine, "no.such.topic", ["d"])  # never published: its topic is not read
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET status = 'FAILED' WHERE message_id = :m"), {"m": never})
        conn.execute(text("UPDATE outbox_message SET status = 'SENT' WHERE message_id = :m"), {"m": lost})
    assert run_relay(config, db_engine).published == 2
    report = _audit(db_engine, config, since)
    assert (report.rows, report.on_topic, report.listed["sent_not_on_topic"]) == (4, 2, [lost])


@pytest.mark.airflow
@pytest.mark.usefixtures("airflow_connections_env")
def test_the_cli_exit_status_says_whether_anything_was_lost(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from outbox_relay_airflow import cli

    topic = topic_name("auditcli")
    create_topics(topic)
    (tmp_path / "orders.yaml").write_text(f"topic: {topic}\n")
    since = (_db_now(db_engine) - timedelta(seconds=1)).isoformat()
    args = ["--services-dir", str(tmp_path), "audit", "orders", "--since", since]
    (mid,) = insert_rows(db_engine, topic, ["a"])
    assert cli.main([*args, "--json"]) == 0  # NEW and not on the topic: nothing lost
    assert json.loads(capsys.readouterr().out)["ok"] is True
    later = (_db_now(db_engine) + timedelta(hours=1)).replace(microsecond=0)
    assert cli.main([*args, "--until", later.isoformat(), "--json"]) == 0  # no offset: the DB's time zone
    assert json.loads(capsys.readouterr().out)["until"] == later.isoformat(sep=" ")
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET status = 'SENT' WHERE message_id = :m"), {"m": mid})
    assert cli.main(args) == 1
    assert f"sent_not_on_topic: {mid}" in capsys.readouterr().out
    assert cli.main([*args, "--until", "2020-01-01"]) == 2
    assert "must be before --until" in capsys.readouterr().err


@pytest.mark.airflow
@pytest.mark.usefixtures("airflow_connections_env")
def test_every_class_of_row_is_reported_and_a_cut_list_says_how_many_more(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A window with rows never sent (more than the 100 the text lists), FAILED rows (given up on, and
    answered FAILED), confirmed and unconfirmed ones: the text names every class with its count and says
    how many ids it left out; --json lists all of them."""
    from outbox_relay_airflow import cli

    topic = topic_name("auditall")
    create_topics(topic)
    (tmp_path / "orders.yaml").write_text(f"topic: {topic}\nconfirmation: {{topic: {topic}.results}}\n")
    since = (_db_now(db_engine) - timedelta(seconds=1)).isoformat()
    config = ServiceConfig.model_validate(
        {"service": "orders", "topic": topic, "confirmation": {"topic": f"{topic}.results"}}
    )
    sent = insert_rows(db_engine, topic, ["a", "b", "c", "d"])
    assert run_relay(config, db_engine).published == 4
    waiting = insert_rows(db_engine, topic, [f"k{n}" for n in range(105)])
    given_up = insert_rows(db_engine, topic, ["e"])
    with db_engine.begin() as conn:
        for message_id, status in [(sent[0], "CONFIRMED"), (sent[1], "FAILED"), (given_up[0], "FAILED")]:
            conn.execute(
                text("UPDATE outbox_message SET status = :s WHERE message_id = :m"),
                {"s": status, "m": message_id},
            )
    args = ["--services-dir", str(tmp_path), "audit", "orders", "--since", since]
    assert cli.main(args) == 0  # nothing lost
    out = capsys.readouterr().out
    assert out.splitlines()[0].endswith(
        "110 rows, sent_not_on_topic 0, order_violations 0, on_topic_not_marked 0, not_sent 105, failed 2, "
        "unconfirmed 2, confirmed 1, duplicates 0"
    ), out.splitlines()[0]
    assert (
        len([line for line in out.splitlines() if line.startswith("  not_sent: ") and "more" not in line])
        == 100
    )
    assert "  not_sent: ... and 5 more (--json lists them all)" in out
    assert (
        f"  failed: {sent[1]}" in out
        and f"  failed: {given_up[0]}" in out
        and f"  confirmed: {sent[0]}" in out
    )
    assert cli.main([*args, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert sorted(report["listed"]["not_sent"]) == sorted(waiting) and report["ids"]["not_sent"] == 105
    assert sorted(report["listed"]["unconfirmed"]) == sorted(sent[2:])


def test_an_audit_of_a_table_that_keeps_no_sent_rows_is_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from outbox_relay_airflow import cli

    (tmp_path / "gone.yaml").write_text("topic: t\ncompletion: delete\nretention: null\n")
    assert cli.main(["--services-dir", str(tmp_path), "audit", "gone", "--since", "2026-01-01"]) == 2
    assert "completion: delete, so its table keeps no sent rows" in capsys.readouterr().err
