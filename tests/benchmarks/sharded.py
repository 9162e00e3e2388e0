"""Sharded relays of one table: the same backlog relayed by 1, 2 and 4 shards at once, each shard in its
own process (as the mapped relay tasks of a sharded service run on separate workers).

The rate is the backlog over the wall time from the moment every shard process is ready (connected,
imports done) until the last shard has drained its rows: start-up is not part of it, as for the other
relay figures."""

from __future__ import annotations

import multiprocessing
import time
from multiprocessing.synchronize import Event
from typing import Any

from tests.benchmarks.common import Result, Sizes, bench_config, count, fresh_backlog, scratch_db, temp_topics

SHARD_COUNTS = (1, 2, 4)
BATCH = 2000


def _shard(db_url: str, topic: str, shards: int, shard: int, ready: Any, go: Event, done: Any) -> None:
    from outbox_relay.relay.engine import RunRequest
    from outbox_relay.store.engine import make_engine
    from tests.benchmarks.common import make_producer
    from tests.benchmarks.project import project_relay

    config = bench_config(topic, BATCH, shards=shards)
    engine = make_engine(db_url)
    relay = project_relay(config, engine, make_producer(config))
    ready.put(shard)
    go.wait()
    stats = relay.run(RunRequest(run_id=f"bench-shard-{shard}", shard=shard if shards > 1 else None))
    done.put((stats.published, time.time()))
    engine.dispose()


def _one_run(db_url: str, topic: str, shards: int) -> tuple[int, float]:
    """Total rows published and the wall seconds of the slowest shard."""
    ctx = multiprocessing.get_context("spawn")
    ready, done, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_shard, args=(db_url, topic, shards, s, ready, go, done)) for s in range(shards)
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
    """rows/s of the whole table per shard count, median of ``repeats`` runs on a fresh backlog each."""
    results = []
    with scratch_db("sharded") as engine, temp_topics("sharded", partitions=8) as (topic,):
        db_url = engine.url.render_as_string(hide_password=False)
        for shards in SHARD_COUNTS:
            samples = []
            for _ in range(sizes.repeats):
                fresh_backlog(engine, topic, sizes.rows)
                published, seconds = _one_run(db_url, topic, shards)
                left = count(engine, "NEW")
                if published != sizes.rows or left:
                    raise RuntimeError(
                        f"{shards} shard(s): published {published} of {sizes.rows}, {left} still NEW"
                    )
                samples.append(published / seconds if seconds > 0 else 0.0)
            results.append(Result(f"sharded_relay_{shards}", BATCH, "rows/s", samples))
    return results
