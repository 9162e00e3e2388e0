"""Shards of one table on the real MariaDB and broker: each shard relays exactly the rows whose key hashes
to it, shards run side by side, and runs whose rows may overlap (a whole-table run, or shards of another
shard count) take turns through the relay lock's buckets."""

from __future__ import annotations

import threading
import zlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.checks import CheckReport, check_database
from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.models import RunStats
from outbox_relay.relay.engine import LOCK_BUSY
from outbox_relay.store.locks import relay_lock
from outbox_relay.store.table import OutboxTable
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, run_relay, statuses

pytestmark = pytest.mark.integration

KEYS = [f"cust-{n}" for n in range(40)]


def _config(
    service_config: Callable[..., ServiceConfig], topic: str, shards: int, **extra: Any
) -> ServiceConfig:
    return service_config(**{"topic": topic, "shards": shards, "batch_size": 50, "relay_lock_wait_seconds": 0.3,
                             **extra})  # fmt: skip


def test_shards_split_the_table_by_key_and_run_side_by_side(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("shards")
    create_topics(topic)
    written = insert_rows(db_engine, topic, [KEYS[n % len(KEYS)] for n in range(1200)])
    config = _config(service_config, topic, 4, relay_lock_wait_seconds=30)
    results: dict[int, RunStats] = {}

    def shard_run(shard: int) -> None:
        results[shard] = run_relay(config, db_engine, run_id=f"shard-{shard}", shard=shard)

    threads = [threading.Thread(target=shard_run, args=(s,)) for s in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert sorted(results) == [0, 1, 2, 3] and all(r.stopped_because == "drained" for r in results.values())
    records = read_all(topic)
    assert sorted(r.headers["outbox-message-id"] for r in records) == sorted(written)  # once each
    by_key: dict[str, list[str]] = defaultdict(list)
    for record in sorted(records, key=lambda r: (r.partition, r.offset)):
        by_key[str(record.key)].append(record.headers["outbox-message-id"])
    order = {m: n for n, m in enumerate(written)}
    assert all(ids == sorted(ids, key=order.__getitem__) for ids in by_key.values())  # per-key order
    sent_by = defaultdict(set)
    with db_engine.connect() as conn:
        for key, run in conn.execute(text("SELECT aggregate_id, relay_run_id FROM outbox_message")):
            sent_by[run].add(zlib.crc32(key.encode()) % 4)
    assert {run: shards for run, shards in sent_by.items()} == {f"shard-{s}": {s} for s in range(4)}


def test_overlapping_runs_take_turns_and_disjoint_shards_do_not(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("shard_locks")
    create_topics(topic)
    insert_rows(db_engine, topic, KEYS[:8])
    two = _config(service_config, topic, 2)
    four = _config(service_config, topic, 4)
    with db_engine.connect() as holder:
        assert relay_lock(OutboxTable(two), shard=1).acquire(holder, 0)  # odd buckets
        holder_id = holder.execute(text("SELECT CONNECTION_ID()")).scalar()
        busy = run_relay(four, db_engine, shard=3)  # shard 3 of 4: odd buckets too
        assert (busy.stopped_because, busy.lock_holder_connection_id) == (LOCK_BUSY, holder_id)
        assert run_relay(four, db_engine, shard=2).stopped_because == "drained"  # even buckets: runs
        assert run_relay(four, db_engine).stopped_because == LOCK_BUSY  # the whole table: every bucket
        relay_lock(OutboxTable(two), shard=1).release(holder)
    assert run_relay(four, db_engine, shard=3).stopped_because == "drained"


def _with_shard_column(
    service_config: Callable[..., ServiceConfig], topic: str, shards: int
) -> ServiceConfig:
    columns = {**service_config(topic=topic).columns.model_dump(exclude_none=True), "shard": "outbox_shard"}
    return _config(service_config, topic, shards, columns=columns, relay_lock_wait_seconds=30)


def _add_shard_column(engine: Engine, modulo: int) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            f"ALTER TABLE outbox_message ADD COLUMN outbox_shard TINYINT UNSIGNED AS "
            f"(COALESCE(CRC32(aggregate_id), 0) % {modulo}) STORED, "
            "ADD INDEX ix_outbox_message_status_outbox_shard_id (status, outbox_shard, id)"
        ))  # fmt: skip


def test_an_indexed_shard_column_gives_each_shard_only_its_rows_through_the_index(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("shardcol")
    create_topics(topic)
    _add_shard_column(db_engine, 4)
    written = insert_rows(db_engine, topic, [KEYS[n % len(KEYS)] for n in range(400)])
    config = _with_shard_column(service_config, topic, 4)
    table = OutboxTable(config)
    with db_engine.connect() as conn:  # the claim's scan uses the shard index, not (status, id)
        plan = conn.execute(text(
            f"EXPLAIN SELECT id FROM outbox_message WHERE status = 'NEW' AND id > 0 AND "
            f"(2 IS NULL OR {table.row_shard} = 2) ORDER BY id LIMIT 50"
        )).mappings().one()  # fmt: skip
    assert plan["key"] == "ix_outbox_message_status_outbox_shard_id", plan
    sent = {
        shard: run_relay(config, db_engine, run_id=f"s{shard}", shard=shard).published for shard in range(4)
    }
    records = read_all(topic)
    assert sorted(r.headers["outbox-message-id"] for r in records) == sorted(written)
    expected = {
        s: sum(1 for n in range(400) if zlib.crc32(KEYS[n % len(KEYS)].encode()) % 4 == s) for s in range(4)
    }
    assert sent == expected  # each shard exactly its keys' rows


def test_a_shard_column_built_for_another_shard_count_fails_the_run_before_any_claim(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("shardstale")
    create_topics(topic)
    _add_shard_column(db_engine, 2)  # shards was 2 when the column was made; now it is 4
    insert_rows(db_engine, topic, KEYS)
    with pytest.raises(ConfigurationError) as caught:
        run_relay(_with_shard_column(service_config, topic, 4), db_engine, shard=1)
    message = str(caught.value)
    assert (
        "column 'outbox_shard' (columns.shard) does not hold (COALESCE(CRC32(`aggregate_id`), 0) % 4)"
        in message
    )
    assert "nothing was claimed" in message and "MODIFY COLUMN `outbox_shard` TINYINT UNSIGNED AS" in message
    assert set(statuses(db_engine).values()) == {"NEW"} and read_all(topic) == []


def test_validate_suggests_the_shard_column_and_checks_its_index(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("shardcheck")
    plain = CheckReport("orders")
    with db_engine.connect() as conn:
        check_database(conn, _config(service_config, topic, 4), plain)
    (note,) = [n for n in plain.notes if "shard column" in n]
    assert (
        "ADD COLUMN `outbox_shard` TINYINT UNSIGNED AS (COALESCE(CRC32(`aggregate_id`), 0) % 4) STORED"
        in note
    )
    with db_engine.begin() as conn:  # the column without its index
        conn.execute(text("ALTER TABLE outbox_message ADD COLUMN outbox_shard TINYINT UNSIGNED AS "
                          "(COALESCE(CRC32(aggregate_id), 0) % 4) STORED"))  # fmt: skip
    mapped = CheckReport("orders")
    with db_engine.connect() as conn:
        check_database(conn, _with_shard_column(service_config, topic, 4), mapped)
    assert any("no index starting with (status, outbox_shard, id)" in p for p in mapped.problems), mapped
    assert any("ADD INDEX" in f and "(`status`, `outbox_shard`, `id`)" in f for f in mapped.fixes), mapped
