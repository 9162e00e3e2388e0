"""Sharded relays of one hot table: 4 shards run by 2 worker processes at once (each takes two mapped
relay tasks in turn, as a Celery worker with one slot would), over 200,000 rows of 64 keys. The history
checker reads every record back with a second client: nothing lost, no duplicates, every key in order,
and each shard published exactly the keys that hash to it."""

from __future__ import annotations

import zlib
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from outbox_relay.writer import OutboxMessage, write_outbox
from tests.faults.conftest import Broker
from tests.faults.history import check_history
from tests.faults.support import config_document, finish, spawn
from tests.integration.kafka_tools import create_topics

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROWS, KEYS, SHARDS = 200_000, 64, 4


def test_four_shards_on_two_workers_relay_200k_rows_once_in_key_order(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("sharded")
    create_topics(topic, partitions=8, bootstrap=broker.bootstrap)
    keys = [f"order-{n}" for n in range(KEYS)]
    with db_engine.begin() as conn:  # the writer's multi-row INSERT, 10,000 rows at a time
        for start in range(0, ROWS, 10_000):
            write_outbox(conn, [OutboxMessage(topic, keys[n % KEYS], "OrderLine", {"n": n})
                                for n in range(start, start + 10_000)])  # fmt: skip
    document = config_document(topic, shards=SHARDS, batch_size=2000, relay_lock_wait_seconds=60,
                               time_budget_seconds=600)  # fmt: skip
    workers = [
        spawn(db_engine, broker.bootstrap, document, run_id=f"w{w}", shards=[w, w + 2]) for w in (0, 1)
    ]
    results = [finish(worker, timeout=900) for worker in workers]

    per_shard = {s["shard"]: s["published"] for r in results for s in r["per_shard"]}
    assert sum(per_shard.values()) == ROWS and set(per_shard) == set(range(SHARDS))
    shard_of = {k: zlib.crc32(k.encode()) % SHARDS for k in keys}
    expected = {s: sum(ROWS // KEYS for k in keys if shard_of[k] == s) for s in range(SHARDS)}
    assert per_shard == expected  # each shard published exactly its keys' rows

    history = check_history(db_engine, [topic], broker.bootstrap)
    record_figures(history.figures(), shards=SHARDS, workers=2, published_per_shard=per_shard)
    history.assert_converged(max_duplicates=0)
    assert history.distinct_published == history.published_messages == ROWS and history.order_violations == 0
    with db_engine.connect() as conn:
        assert (
            conn.execute(text("SELECT COUNT(*) FROM outbox_message WHERE status = 'SENT'")).scalar() == ROWS
        )
