"""Per-row not-before times on the real MariaDB and broker: a scheduled row is not sent before its time,
later rows of its key wait behind it (per-key order), other keys go on; the writer API schedules rows of
the standard table, a registered table maps a column of its own; explain names the state."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import STANDARD_COLUMNS, ServiceConfig
from outbox_relay.explain import Explainer
from outbox_relay.models import RunStats
from outbox_relay.writer import OutboxMessage, write_outbox
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, run_relay

pytestmark = pytest.mark.integration
DELAY = 10  # seconds a scheduled row waits


def _explain(engine: Engine, config: ServiceConfig, reference: str) -> dict[str, Any]:
    with engine.connect() as conn:
        found = Explainer(config).explain(conn, reference)
    assert found is not None
    return found.as_dict()


def _relay_until_published(config: ServiceConfig, engine: Engine, wanted: int, seconds: float) -> RunStats:
    """Relay runs, one after the other, until one publishes ``wanted`` rows (the scheduled time passed)."""
    deadline = time.monotonic() + seconds
    while True:
        stats = run_relay(config, engine)
        if stats.published >= wanted or time.monotonic() > deadline:
            return stats
        time.sleep(0.1)


def _sent_at(engine: Engine, message_id: str) -> datetime | None:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT sent_at FROM outbox_message WHERE message_id = :m"), {"m": message_id}
        ).scalar()
    return found  # type: ignore[no-any-return]


def test_a_delayed_message_waits_and_holds_its_key_behind_it(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    """The scheduled row's 10 s must outlast the first run and both explains, even on a loaded machine (2 s
    did not, once, in a clean-clone `make test`)."""
    topic = topic_name("not_before")
    create_topics(topic)
    config = service_config(topic=topic)
    with db_engine.begin() as conn:
        written_at = conn.execute(text("SELECT NOW(6)")).scalar()
        later, behind, other = write_outbox(
            conn,
            [
                OutboxMessage(topic, "k", "Reminder", {"n": 1}, not_before=timedelta(seconds=DELAY)),
                OutboxMessage(topic, "k", "Reminder", {"n": 2}),
                OutboxMessage(topic, "j", "Reminder", {"n": 3}),
            ],
        )

    first = run_relay(config, db_engine)
    assert first.published == 1 and first.held_back == 2
    assert [r.headers["outbox-message-id"] for r in read_all(topic)] == [other]
    scheduled = _explain(db_engine, config, later)
    assert scheduled["state"] == "scheduled" and "not sent before" in scheduled["why"]
    assert scheduled["facts"]["not before"] >= written_at + timedelta(seconds=DELAY)
    assert "next attempt at" not in scheduled["facts"] or scheduled["facts"]["next attempt at"] is None
    held = _explain(db_engine, config, behind)
    assert held["state"] == "held_back" and f"message {later}" in held["why"]
    assert "scheduled not before" in held["why"]

    second = _relay_until_published(config, db_engine, 2, seconds=DELAY + 30)
    assert second.published == 2
    on_topic = [(r.key, json.loads(r.value)["n"]) for r in read_all(topic) if r.key == "k"]
    assert on_topic == [("k", 1), ("k", 2)]  # the scheduled row first: per-key order kept
    sent = _sent_at(db_engine, later)
    assert sent is not None and sent >= written_at + timedelta(seconds=DELAY)


def test_an_aware_datetime_is_converted_to_the_session_time_zone(db_engine: Engine) -> None:
    """The standard table's times are DATETIME in the session time zone (as NOW(6) reads them): an aware
    instant lands as the same instant, whatever the writer's session zone."""
    with db_engine.begin() as conn:
        conn.execute(text("SET time_zone = '+05:30'"))
        (mid,) = write_outbox(
            conn,
            OutboxMessage("t", "k", "E", {}, not_before=datetime.now(UTC) + timedelta(hours=1)),
        )
        ahead = conn.execute(
            text(
                "SELECT TIMESTAMPDIFF(SECOND, NOW(6), next_attempt_at) FROM outbox_message WHERE message_id = :m"
            ),
            {"m": mid},
        ).scalar()
    assert ahead is not None and 3590 <= ahead <= 3600


def test_a_registered_table_maps_its_own_not_before_column(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    """A table without retry columns (retry state in outbox_relay_attempt) and one with them: each reads
    the writer's column with the claim; moving the time into the past releases the row and its key."""
    topic = topic_name("not_before_mapped")
    create_topics(topic)
    with db_engine.begin() as conn:
        conn.execute(text("ALTER TABLE outbox_message ADD COLUMN deliver_after DATETIME(6) NULL"))
    bare = {
        k: v for k, v in STANDARD_COLUMNS.items() if k not in {"attempts", "last_error", "next_attempt_at"}
    }
    for columns in (bare, STANDARD_COLUMNS):
        config = service_config(topic=topic, columns={**columns, "not_before": "deliver_after"})
        later, behind, other = insert_rows(db_engine, topic, ["k", "k", "j"])
        with db_engine.begin() as conn:
            conn.execute(
                text(
                    "UPDATE outbox_message SET deliver_after = NOW(6) + INTERVAL 1 HOUR WHERE message_id = :m"
                ),
                {"m": later},
            )
        stats = run_relay(config, db_engine)
        assert (stats.published, stats.held_back) == (1, 2), columns
        assert _explain(db_engine, config, later)["state"] == "scheduled"
        assert _explain(db_engine, config, behind)["state"] == "held_back"
        assert _sent_at(db_engine, other) is not None

        with db_engine.begin() as conn:  # the writer moves its time: both rows of the key go, in order
            conn.execute(text("UPDATE outbox_message SET deliver_after = NOW(6) - INTERVAL 1 SECOND"))
        assert run_relay(config, db_engine).published == 2
        assert _sent_at(db_engine, later) is not None and _sent_at(db_engine, behind) is not None
        records = [r for r in read_all(topic) if r.headers["outbox-message-id"] in {later, behind}]
        assert [r.headers["outbox-message-id"] for r in records] == [later, behind]
