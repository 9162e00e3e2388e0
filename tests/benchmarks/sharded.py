"""Sharded relays of one table: the same backlog relayed by 1, 2 and 4 shards at once, each shard in its
own process (as the mapped relay tasks of a sharded service run on separate workers); 2 and 4 shards
again with an indexed shard column (``columns.shard``, ``sharded_relay_<n>_indexed``).

The rate is the backlog over the wall time from the moment every shard process is ready (connected,
imports done) until the last shard has drained its rows: start-up is not part of it, as for the other
relay figures."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Event
from typing import Any

from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from tests.benchmarks.common import (
    Result,
    Sizes,
    bench_config,
    count,
    fresh_backlog,
    scratch_db,
    temp_topics,
    truncate,
)

RUNS = ((1, False), (2, False), (4, False), (2, True), (4, True))  # (shards, with an indexed shard column)
BATCH = 2000
SHARD_COLUMN = "outbox_shard"


def _config(topic: str, shards: int, indexed: bool) -> ServiceConfig:
    config = bench_config(topic, BATCH, shards=shards)
    if not indexed:
        return config
    columns = {**config.columns.model_dump(exclude_none=True), "shard": SHARD_COLUMN}
    return bench_config(topic, BATCH, shards=shards, columns=columns)


def _shard_column(engine: Engine, shards: int | None) -> None:
    """Give the (emptied) table a shard column for ``shards`` and its index, or drop them (None)."""
    truncate(engine)
    with engine.begin() as conn:
        has = conn.execute(text(f"SHOW COLUMNS FROM outbox_message LIKE '{SHARD_COLUMN}'")).first()
        if has:
            conn.execute(
                text(f"ALTER TABLE outbox_message DROP INDEX ix_status_shard_id, DROP COLUMN {SHARD_COLUMN}")
            )
        if shards is not None:
            conn.execute(text(
                f"ALTER TABLE outbox_message ADD COLUMN {SHARD_COLUMN} TINYINT UNSIGNED AS "
                f"(COALESCE(CRC32(aggregate_id), 0) % {shards}) STORED, "
                f"ADD INDEX ix_status_shard_id (status, {SHARD_COLUMN}, id)"
            ))  # fmt: skip


def _shard(
    db_url: str, topic: str, shards: int, indexed: bool, shard: int, ready: Any, go: Event, done: Any
) -> None:
    from outbox_relay.relay.engine import RunRequest
    from outbox_relay.store.connect import make_engine
    from tests.benchmarks.common import bench_run_id, make_producer
    from tests.benchmarks.project import project_relay

    config = _config(topic, shards, indexed)
    engine = make_engine(db_url)
    relay = project_relay(config, engine, make_producer(config))
    ready.put(shard)
    go.wait()
    stats = relay.run(RunRequest(run_id=bench_run_id(), shard=shard if shards > 1 else None))
    done.put((stats.published, time.time()))
    engine.dispose()


def _one_run(db_url: str, topic: str, shards: int, indexed: bool) -> tuple[int, float]:
    """Total rows published and the wall seconds of the slowest shard."""
    ctx = multiprocessing.get_context("spawn")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_shard, args=(db_url, topic, shards, indexed, s, ready, go, done))
        for s in range(shards)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get(timeout=120)
    started = time.time()
    go.set()
    finished = [done.get(timeout=3600) for _ in procs]
    for proc in procs:
        proc.join(60)
    return sum(p for p, _ in finished), max(t for _, t in finished) - started


def measure(sizes: Sizes) -> list[Result]:
    """rows/s of the whole table per shard count (and shard column), median of ``repeats`` runs on a fresh
    backlog each."""
    results = []
    with scratch_db("sharded") as engine, temp_topics("sharded", partitions=8) as (topic,):
        db_url = engine.url.render_as_string(hide_password=False)
        for shards, indexed in RUNS:
            _shard_column(engine, shards if indexed else None)
            samples = []
            for _ in range(sizes.repeats):
                fresh_backlog(engine, topic, sizes.rows)
                published, seconds = _one_run(db_url, topic, shards, indexed)
                left = count(engine, "NEW")
                if published != sizes.rows or left:
                    raise RuntimeError(
                        f"{shards} shard(s): published {published} of {sizes.rows}, {left} still NEW"
                    )
                samples.append(published / seconds if seconds > 0 else 0.0)
            name = f"sharded_relay_{shards}{'_indexed' if indexed else ''}"
            results.append(Result(name, BATCH, "rows/s", samples))
    return results
