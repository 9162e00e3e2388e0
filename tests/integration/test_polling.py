"""Low-latency mode: a run that drained the table keeps polling until its budget is spent."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, run_relay, statuses

pytestmark = pytest.mark.integration


def test_polling_run_picks_up_rows_written_while_it_runs(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("poll")
    create_topics(topic)
    config = service_config(topic=topic, poll_interval_seconds=0.05)
    insert_rows(db_engine, topic, ["a", "b"])
    late = threading.Timer(1.0, lambda: insert_rows(db_engine, topic, ["c", "d", "e"]))
    late.start()
    started = time.monotonic()
    stats = run_relay(config, db_engine, "poll-run", time_budget_seconds=3)
    late.join()
    assert stats.published == 5, stats.as_dict()
    assert stats.polls > 10
    assert time.monotonic() - started >= 2.5  # it kept polling instead of ending when first drained
    assert set(statuses(db_engine).values()) == {"SENT"}
    assert len(read_all(topic)) == 5


def test_without_polling_a_run_ends_once_drained(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("nopoll")
    create_topics(topic)
    insert_rows(db_engine, topic, ["a"])
    stats = run_relay(service_config(topic=topic), db_engine, "once", time_budget_seconds=30)
    assert stats.published == 1 and stats.polls == 0 and stats.stopped_because == "drained"
