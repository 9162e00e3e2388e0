"""Replay against the real MariaDB and broker: FAILED rows requeued by filter and by id, SENT-unconfirmed
rows republished with the replay header, dry runs, the max_rows bound, per-key order, and the history
(the row's own relay_run_id is never overwritten)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import Consumer
from sqlalchemy import Engine, bindparam, text

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.explain import Explainer
from outbox_relay.relay.engine import OutboxRelay
from outbox_relay.replay import (
    DEAD_LETTER,
    FAILED,
    UNCONFIRMED,
    DeadLetterReplayer,
    HistoryEntry,
    Replayer,
    ReplayFilter,
    ReplayJob,
)
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, relay_publisher, run_relay, sent_by, statuses
from tests.stack import BOOTSTRAP

pytestmark = pytest.mark.integration

AUDIT = HistoryEntry("oncall@example.com", "consumer bug fixed", "manual__replay_1")


def _set(engine: Engine, message_ids: list[str], assignments: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE outbox_message SET {assignments} WHERE message_id IN :m").bindparams(
                bindparam("m", expanding=True)
            ),
            {"m": message_ids},
        )


def _history(engine: Engine) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM outbox_relay_replay ORDER BY id")).mappings().all()
    return [dict(r) for r in rows]


def _column(engine: Engine, column: str) -> dict[str, Any]:
    with engine.connect() as conn:
        return dict(conn.execute(text(f"SELECT message_id, {column} FROM outbox_message")).all())


def _consumer() -> Consumer:
    return Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"replay-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
        }
    )


def _request(*kinds: str, dry_run: bool = False, max_rows: int = 1000, **wanted: Any) -> ReplayJob:
    return ReplayJob(ReplayFilter(frozenset(kinds), **wanted), AUDIT, max_rows, dry_run)


@pytest.fixture
def config(service_config: Callable[..., ServiceConfig], topic_name: Callable[[str], str]) -> ServiceConfig:
    topic = topic_name("replay")
    create_topics(topic)
    return service_config(topic=topic, confirmation={"topic": f"{topic}.results"})


def test_failed_rows_by_filter_go_back_to_new_with_their_error_in_the_history(
    db_engine: Engine, config: ServiceConfig
) -> None:
    a1, b1, a2 = insert_rows(db_engine, config.topic or "", ["a", "b", "a"])
    _set(db_engine, [a1, b1, a2], "status = 'FAILED', attempts = 5, last_error = 'consumer schema v2'")
    _set(db_engine, [a1], "relay_run_id = 'scheduled__gave_up'")
    replayer = Replayer(config, db_engine)

    dry = replayer.run(_request(FAILED, dry_run=True, key="a"))
    assert (dry.matched, dry.requeued) == (2, 2) and statuses(db_engine)[a1] == "FAILED"  # nothing changed
    assert _history(db_engine) == []

    done = replayer.run(_request(FAILED, key="a"))
    assert (done.matched, done.requeued, done.republished) == (2, 2, 0)
    status = statuses(db_engine)
    assert (status[a1], status[a2], status[b1]) == ("NEW", "NEW", "FAILED")
    assert _column(db_engine, "attempts")[a1] == 0 and _column(db_engine, "last_error")[a1] is None
    history = _history(db_engine)
    assert [(h["message_id"], h["action"], h["previous_status"]) for h in history] == [
        (a1, "requeue", "FAILED"),
        (a2, "requeue", "FAILED"),
    ]
    assert history[0]["previous_error"] == "consumer schema v2" and history[0]["previous_attempts"] == 5
    assert history[0]["previous_run_id"] == "scheduled__gave_up"
    assert {(h["requested_by"], h["reason"], h["run_id"]) for h in history} == {
        ("oncall@example.com", "consumer bug fixed", "manual__replay_1")
    }

    stats = run_relay(config, db_engine, run_id="scheduled__next")  # the relay sends them like any NEW row
    assert stats.published == 2 and statuses(db_engine)[a1] == "SENT"
    assert [r.headers["outbox-message-id"] for r in read_all(config.topic or "")] == [a1, a2]


def test_failed_rows_by_id_and_by_message_id(db_engine: Engine, config: ServiceConfig) -> None:
    ids = insert_rows(db_engine, config.topic or "", ["a", "b", "c", "d"])
    _set(db_engine, ids, "status = 'FAILED', attempts = 5")
    with db_engine.connect() as conn:
        first_pk = conn.execute(
            text("SELECT id FROM outbox_message WHERE message_id = :m"), {"m": ids[0]}
        ).scalar()
    report = Replayer(config, db_engine).run(
        _request(FAILED, row_ids=(str(first_pk),), message_ids=(ids[2],))
    )
    # Both criteria must hold: the row with that primary key is not the row with that message id.
    assert report.matched == 0
    assert Replayer(config, db_engine).run(_request(FAILED, message_ids=(ids[2], ids[3]))).requeued == 2
    assert Replayer(config, db_engine).run(_request(FAILED, row_ids=(str(first_pk),))).requeued == 1
    assert [statuses(db_engine)[m] for m in ids] == ["NEW", "FAILED", "NEW", "NEW"]


def test_unconfirmed_rows_are_republished_with_the_header_and_keep_status_and_run_id(
    db_engine: Engine, config: ServiceConfig
) -> None:
    ids = insert_rows(db_engine, config.topic or "", ["a", "b", "c"])
    assert run_relay(config, db_engine, run_id="scheduled__original").published == 3
    _set(db_engine, [ids[2]], "status = 'CONFIRMED'")
    relay = OutboxRelay(config, db_engine, relay_publisher(config))

    report = Replayer(config, db_engine).run(_request(UNCONFIRMED), relay)
    assert (report.matched, report.republished, report.requeued) == (2, 2, 0)
    records = read_all(config.topic or "")
    replayed = [r.headers["outbox-message-id"] for r in records if r.headers.get("outbox-replay") == "true"]
    assert replayed == ids[:2]
    assert [statuses(db_engine)[m] for m in ids] == ["SENT", "SENT", "CONFIRMED"]
    assert set(sent_by(db_engine, config).values()) == {"scheduled__original"}  # preserved
    assert [(h["message_id"], h["action"], h["run_id"]) for h in _history(db_engine)] == [
        (ids[0], "republish", "manual__replay_1"),
        (ids[1], "republish", "manual__replay_1"),
    ]


def test_a_republish_never_overtakes_an_older_unpublished_row_of_its_key(
    db_engine: Engine, config: ServiceConfig
) -> None:
    older, newer, other = insert_rows(db_engine, config.topic or "", ["k", "k", "z"])
    _set(db_engine, [newer, other], "status = 'SENT', relay_run_id = 'scheduled__1'")
    # `older` is still NEW (waiting for its retry): republishing `newer` now would put it ahead.
    _set(db_engine, [older], "attempts = 1, next_attempt_at = NOW(6) + INTERVAL 1 HOUR")
    relay = OutboxRelay(config, db_engine, relay_publisher(config))
    report = Replayer(config, db_engine).run(_request(UNCONFIRMED), relay)
    assert (report.matched, report.republished, report.held_back) == (2, 1, 1)
    assert {r["message_id"]: r["outcome"] for r in report.rows} == {newer: "held back", other: "republish"}
    assert [r.headers["outbox-message-id"] for r in read_all(config.topic or "")] == [other]


def test_more_matches_than_max_rows_change_nothing(db_engine: Engine, config: ServiceConfig) -> None:
    ids = insert_rows(db_engine, config.topic or "", ["a", "b", "c"])
    _set(db_engine, ids, "status = 'FAILED'")
    with pytest.raises(ConfigurationError, match="more than max_rows=2 rows match"):
        Replayer(config, db_engine).run(_request(FAILED, max_rows=2))
    assert set(statuses(db_engine).values()) == {"FAILED"} and _history(db_engine) == []


def test_requests_this_service_cannot_serve_are_refused_by_name(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    plain = Replayer(service_config(topic="t"), db_engine)
    with pytest.raises(ConfigurationError, match="no confirmation topic"):
        plain.run(_request(UNCONFIRMED))
    with pytest.raises(ConfigurationError, match="a reason is required"):
        plain.run(ReplayJob(ReplayFilter(frozenset({FAILED})), HistoryEntry("me", " ", "r"), 10))
    no_key = service_config(
        topic="t", retention=None, columns={"id": "id", "status": "status", "payload": "payload"}
    )
    with pytest.raises(ConfigurationError, match=r"no columns\.key"):
        Replayer(no_key, db_engine).run(_request(FAILED, key="a"))


def test_explain_lists_every_replay_of_a_row(db_engine: Engine, config: ServiceConfig) -> None:
    (row,) = insert_rows(db_engine, config.topic or "", ["a"])
    _set(db_engine, [row], "status = 'FAILED', attempts = 5, last_error = 'schema v2'")
    Replayer(config, db_engine).run(_request(FAILED))
    with db_engine.connect() as conn:
        explanation = Explainer(config).explain(conn, row)
    assert explanation is not None
    (entry,) = explanation.facts["history"]
    assert "requeue by oncall@example.com in run manual__replay_1 (consumer bug fixed)" in entry
    assert "before: status FAILED, error 'schema v2'" in entry
    assert any(line.startswith("    - ") and "requeue" in line for line in explanation.lines())


def test_dead_letter_copies_go_back_to_their_original_topic_once_their_rows_are_gone(
    db_engine: Engine, service_config: Callable[..., ServiceConfig], topic_name: Callable[[str], str]
) -> None:
    topic, dlq = topic_name("dlq_src"), topic_name("dlq")
    create_topics(topic, dlq)
    config = service_config(topic=topic, dead_letter_topic=dlq, retry={"max_attempts": 1})
    good, bad, other = insert_rows(db_engine, topic, ["a", "b", "c"])
    _set(db_engine, [bad, other], "payload = 'not json'")  # poison: dead-lettered, then FAILED
    assert run_relay(config, db_engine).dead_lettered == 2
    with db_engine.begin() as conn:  # retention deleted the FAILED rows: only the copies are left
        conn.execute(text("DELETE FROM outbox_message WHERE status = 'FAILED'"))
    consumer = _consumer()
    try:
        replayer = DeadLetterReplayer(config, db_engine)
        dry = replayer.run(_request(DEAD_LETTER, dry_run=True, key="b"), consumer, None)
        assert (dry.matched, dry.republished) == (1, 1) and dry.rows[0]["message_id"] == bad
        assert read_all(topic)[-1].headers["outbox-message-id"] == good  # a dry run publishes nothing

        done = replayer.run(_request(DEAD_LETTER, key="b"), consumer, relay_publisher(config))
    finally:
        consumer.close()
    assert (done.matched, done.republished) == (1, 1)
    replayed = [r for r in read_all(topic) if r.headers.get("outbox-replay") == "true"]
    assert [(r.headers["outbox-message-id"], r.key, r.value) for r in replayed] == [(bad, "b", b"not json")]
    assert "outbox-error" not in replayed[0].headers
    replays = [h for h in _history(db_engine) if h["action"] != "gave_up"]  # the relay's own entries
    assert [(h["message_id"], h["action"], h["previous_error"] is not None) for h in replays] == [
        (bad, "dead_letter", True)
    ]
    consumer = _consumer()
    try:
        with pytest.raises(ConfigurationError, match="2 dead-letter copies match, more than max_rows=1"):
            DeadLetterReplayer(config, db_engine).run(_request(DEAD_LETTER, max_rows=1), consumer, None)
    finally:
        consumer.close()
