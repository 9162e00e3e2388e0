"""Scenario 5: four relay processes on the same table at once, no faults."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from tests.faults.conftest import Broker
from tests.faults.history import check_history
from tests.faults.support import config_document, finish, spawn
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows

pytestmark = pytest.mark.integration

ROWS, RELAYS = 1200, 4


def test_four_relay_processes_publish_every_row_exactly_once_in_key_order(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("concurrent")
    create_topics(topic, bootstrap=broker.bootstrap)
    insert_rows(db_engine, topic, [f"k{i % 13}" for i in range(ROWS)])
    document = config_document(topic, batch_size=50, relay_lock_wait_seconds=60)
    children = [spawn(db_engine, broker.bootstrap, document, run_id=f"r{n}") for n in range(RELAYS)]
    results = [finish(child) for child in children]

    assert sum(r["published"] for r in results) == ROWS
    history = check_history(db_engine, [topic], broker.bootstrap, consume=True)
    record_figures(history.figures(), relays=RELAYS, published_per_relay=[r["published"] for r in results])
    history.assert_converged(max_duplicates=0)
    assert history.distinct_published == ROWS
