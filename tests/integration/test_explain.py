"""`explain` against the real MariaDB: each state a row can be in, named with its reason."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.explain import Explainer
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, run_relay

pytestmark = pytest.mark.integration


def _set(engine: Engine, message_id: str, assignments: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE outbox_message SET {assignments} WHERE message_id = :m"), {"m": message_id}
        )


def _explain(engine: Engine, config: ServiceConfig, reference: str) -> dict[str, object]:
    with engine.connect() as conn:
        explanation = Explainer(config).explain(conn, reference)
    assert explanation is not None
    return explanation.as_dict()


def test_every_state_is_named_with_its_reason(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    config = service_config(topic="t", confirmation={"topic": "t.results"}, dead_letter_topic="t.dlq")
    eligible, waiting, behind, sent, confirmed, failed = insert_rows(
        db_engine, "t", ["a", "k", "k", "b", "c", "d"]
    )
    _set(
        db_engine,
        waiting,
        "attempts = 2, last_error = 'broker said no', next_attempt_at = NOW(6) + INTERVAL 1 HOUR",
    )
    _set(db_engine, sent, "status = 'SENT', sent_at = NOW(6), relay_run_id = 'scheduled__1'")
    _set(db_engine, confirmed, "status = 'CONFIRMED', confirmed_at = NOW(6)")
    _set(db_engine, failed, "status = 'FAILED', attempts = 5, last_error = 'payload is not valid JSON'")

    assert _explain(db_engine, config, eligible)["state"] == "new"
    retry = _explain(db_engine, config, waiting)
    assert retry["state"] == "waiting_for_retry" and "broker said no" in str(retry["why"])
    held = _explain(db_engine, config, behind)
    assert (
        held["state"] == "held_back"
        and f"message {waiting}" in str(held["why"])
        and "'k'" in str(held["why"])
    )
    shipped = _explain(db_engine, config, sent)
    assert (
        shipped["state"] == "sent"
        and "scheduled__1" in str(shipped["why"])
        and "t.results" in str(shipped["why"])
    )
    assert _explain(db_engine, config, confirmed)["state"] == "confirmed"
    gone = _explain(db_engine, config, failed)
    assert (
        gone["state"] == "failed"
        and "out of attempts (5)" in str(gone["why"])
        and "t.dlq" in str(gone["why"])
    )
    with db_engine.connect() as conn:
        row_id = conn.execute(
            text("SELECT id FROM outbox_message WHERE message_id = :m"), {"m": sent}
        ).scalar()
        assert Explainer(config).explain(conn, str(row_id)) is not None  # by primary key too
        assert Explainer(config).explain(conn, "no-such-row") is None


def test_a_young_row_names_when_it_becomes_eligible(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    (young,) = insert_rows(db_engine, "t", ["a"])
    found = _explain(db_engine, service_config(topic="t", threshold_seconds=3600), young)
    assert found["state"] == "too_young" and "eligible from" in str(found["why"])


@pytest.mark.airflow
@pytest.mark.usefixtures("airflow_connections_env")
def test_the_cli_explains_a_row_and_says_when_none_matches(
    db_engine: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from outbox_relay_airflow import cli

    (mid,) = insert_rows(db_engine, "t", ["a"])
    (tmp_path / "orders.yaml").write_text("topic: t\n")
    assert cli.main(["--services-dir", str(tmp_path), "explain", "orders", mid, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "new"
    assert cli.main(["--services-dir", str(tmp_path), "explain", "orders", "nope"]) == 1
    assert "no row of outbox_message has message id or id 'nope'" in capsys.readouterr().err
    assert cli.main(["--services-dir", str(tmp_path), "explain", "missing", "x"]) == 2


def test_retry_state_kept_in_the_attempt_table_is_read_too(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    """A table registered without retry columns: attempts, waiting and 'given up' live in
    outbox_relay_attempt, and explain reads them from there."""
    columns = {"id": "id", "status": "status", "message_id": "message_id", "key": "aggregate_id",
               "topic": "topic", "payload": "payload", "created_at": "created_at"}  # fmt: skip
    config = service_config(topic="t", columns=columns, statuses={"failed": None, "confirmed": None})
    given_up, waiting = insert_rows(db_engine, "t", ["a", "b"])
    with db_engine.begin() as conn:
        ids = dict(conn.execute(text("SELECT message_id, id FROM outbox_message")).all())
        conn.execute(
            text(
                "INSERT INTO outbox_relay_attempt (service, source_table, row_id, attempts, last_error, "
                "next_attempt_at, failed) VALUES ('orders', 'outbox_message', :g, 5, 'poison', NULL, 1), "
                "('orders', 'outbox_message', :w, 1, 'timeout', NOW(6) + INTERVAL 1 HOUR, 0)"
            ),
            {"g": str(ids[given_up]), "w": str(ids[waiting])},
        )
    gone = _explain(db_engine, config, given_up)
    assert gone["state"] == "given_up" and "outbox_relay_attempt" in str(gone["why"])
    assert _explain(db_engine, config, waiting)["state"] == "waiting_for_retry"


def test_explain_lists_every_run_that_failed_a_row_and_the_one_that_gave_up(
    db_engine: Engine, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("explain_runs")
    create_topics(topic)
    config = ServiceConfig.model_validate(
        {"service": "billing", "topic": topic, "retry": {"max_attempts": 2, "backoff_seconds": 0}}
    )
    (poison,) = insert_rows(db_engine, topic, ["a"], payload="{not json")
    run_relay(config, db_engine, run_id="scheduled__first")
    run_relay(config, db_engine, run_id="scheduled__second")
    facts = _explain(db_engine, config, poison)
    assert facts["state"] == "failed"
    history = facts["facts"]["history"]  # type: ignore[index]
    assert len(history) == 2, history
    assert "attempt in run scheduled__first (attempt 1 of 2 failed; retry in 0s)" in history[0]
    assert "gave_up in run scheduled__second (attempt 2 of 2 failed; out of attempts)" in history[1]
    assert "JSON" in history[1]
