"""Low-latency mode: a run that drained the table keeps polling until its budget is spent."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, run_relay, sent_by, statuses
from tests.waiting import wait_until

pytestmark = pytest.mark.integration


def test_polling_run_picks_up_rows_written_while_it_runs(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    """The late rows are written only once the run has drained the first two (so it was running, and had
    found the table empty), and while it still runs: it can only publish them by polling."""
    topic = topic_name("poll")
    create_topics(topic)
    config = service_config(topic=topic, poll_interval_seconds=0.05)
    first = insert_rows(db_engine, topic, ["a", "b"])
    started = time.monotonic()
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(run_relay, config, db_engine, "poll-run", time_budget_seconds=3)
        wait_until(
            lambda: all(statuses(db_engine)[m] == "SENT" for m in first) or run.done(),
            "the polling run to drain the first rows",
        )
        assert not run.done(), run.result()  # drained, and still running
        late = insert_rows(db_engine, topic, ["c", "d", "e"])
        assert not run.done(), run.result()  # the late rows were written while it ran
        stats = run.result(timeout=30)
    assert stats.published == 5, stats.as_dict()
    assert stats.polls > 10
    assert time.monotonic() - started >= 2.5  # it kept polling instead of ending when first drained
    assert statuses(db_engine) == dict.fromkeys(first + late, "SENT")
    assert set(sent_by(db_engine, config).values()) == {"poll-run"}  # all five by this one run
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(first + late)


def test_without_polling_a_run_ends_once_drained(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("nopoll")
    create_topics(topic)
    insert_rows(db_engine, topic, ["a"])
    stats = run_relay(service_config(topic=topic), db_engine, "once", time_budget_seconds=30)
    assert stats.published == 1 and stats.polls == 0 and stats.stopped_because == "drained"


def test_a_lingering_run_relays_rows_that_keep_coming_then_ends(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    """linger_seconds: rows written while the run lingers are relayed by it; once none came for the
    linger it ends, long before its budget."""
    topic = topic_name("linger")
    create_topics(topic)
    config = service_config(topic=topic, linger_seconds=1.5)
    first = insert_rows(db_engine, topic, ["a"])
    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(run_relay, config, db_engine, "linger-run", time_budget_seconds=120)
        late: list[str] = []
        for key in ("b", "c", "d"):  # each written once the previous ones are SENT, while the run lingers
            so_far = first + late
            wait_until(
                lambda so_far=so_far: all(statuses(db_engine)[m] == "SENT" for m in so_far) or run.done(),
                "the lingering run to relay the rows so far",
            )
            assert not run.done(), run.result()
            late += insert_rows(db_engine, topic, [key])
        last_written = time.monotonic()
        stats = run.result(timeout=60)
        ended = time.monotonic()
    assert stats.published == 4, stats.as_dict()
    assert stats.stopped_because == "drained"
    assert 1.0 <= ended - last_written < 60  # it lingered after the last row, and did not wait for its budget
    assert set(sent_by(db_engine, config).values()) == {"linger-run"}
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(first + late)
