"""Scenario 9: the relay host's clock is 10 minutes off (either way). Thresholds, backoff and retention
are decided by the database clock (NOW(6) in the SQL), so nothing is relayed or deleted early or late."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from tests.faults.conftest import Broker
from tests.faults.support import config_document, finish, spawn
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, statuses

pytestmark = pytest.mark.integration

SKEW = 600.0  # seconds


@pytest.mark.parametrize("offset", [SKEW, -SKEW], ids=["ahead", "behind"])
def test_a_skewed_relay_host_follows_the_database_clock(
    offset: float,
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("clock")
    create_topics(topic, bootstrap=broker.bootstrap)
    old = insert_rows(db_engine, topic, ["a"], age_seconds=120)[0]  # past the 60 s threshold
    young = insert_rows(db_engine, topic, ["b"])[0]  # not yet: too young by the DB clock
    backing_off = insert_rows(db_engine, topic, ["c"], age_seconds=120)[0]
    expired, not_yet = insert_rows(db_engine, topic, ["d", "e"])
    day = 86400
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "UPDATE outbox_message SET attempts = 1, next_attempt_at = NOW(6) + INTERVAL 5 MINUTE "
                "WHERE message_id = :m"
            ),
            {"m": backing_off},
        )
        for mid, age in ((expired, 7 * day + 300), (not_yet, 7 * day - 300)):  # 5 minutes either side
            conn.execute(
                text(
                    "UPDATE outbox_message SET status = 'SENT', updated_at = NOW(6) - INTERVAL :s SECOND "
                    "WHERE message_id = :m"
                ),
                {"s": age, "m": mid},
            )
    document = config_document(topic, threshold_seconds=60, retention={"days": 7})

    started = time.time()
    relay = finish(spawn(db_engine, broker.bootstrap, document, clock_offset_seconds=offset))
    cleanup = finish(
        spawn(db_engine, broker.bootstrap, document, what="cleanup", clock_offset_seconds=offset)
    )
    host_skew = relay["host_time"] - started
    assert abs(host_skew - offset) < 30, host_skew  # the relay process really ran with a skewed clock

    state = statuses(db_engine)
    assert state[old] == "SENT" and state[young] == "NEW" and state[backing_off] == "NEW"
    assert relay["published"] == 1 and cleanup["deleted_terminal"] == 1
    assert expired not in state and state[not_yet] == "SENT"
    record_figures(
        {
            "host_clock_offset_s": round(host_skew),
            "relayed_early": int(state[young] != "NEW") + int(state[backing_off] != "NEW"),
            "relayed_late": int(state[old] != "SENT"),
            "deleted_early": int(not_yet not in state),
            "kept_past_retention": int(expired in state),
        }
    )
