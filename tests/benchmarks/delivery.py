"""What exactly-once delivery costs: the project's relay with ``delivery: at_least_once`` against
``delivery: exactly_once`` in alternating runs on fresh backlogs of the same size (so drift of a shared
machine hits both alike), per batch size.

Each exactly-once run is timed as a task runs it: from the start of ``run`` (fencing older producers, the
aborted probe record, reading the progress topic) to the last batch's commit. The per-batch figure is the
time from the first ``produce`` of a batch to its acknowledgement (at-least-once: the flush) or to its
transaction's commit (exactly once), averaged over the run's batches; ``exactly_once_commit_ms`` is the
part of it spent in ``commit_transaction`` (the flush and the commit), per batch."""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from outbox_relay.models import RunStats
from outbox_relay.relay.engine import RunRequest
from tests.benchmarks.common import (
    Result,
    Sizes,
    bench_config,
    bench_run_id,
    fresh_backlog,
    make_producer,
    rate,
    scratch_db,
    temp_topics,
)
from tests.benchmarks.project import check_drained, project_relay
from tests.integration.outbox_rows import make_relay


def _timed(config: ServiceConfig, engine: Engine, rows: int, producer: Any) -> RunStats:
    fresh_backlog(engine, config.topic or "", rows)
    relay = project_relay(config, engine, producer) if producer is not None else make_relay(config, engine)
    started = time.perf_counter()
    stats = relay.run(RunRequest(run_id=bench_run_id()))
    stats.elapsed_seconds = time.perf_counter() - started
    check_drained(engine, stats, rows, f"{config.delivery} relay batch {config.batch_size}")
    return stats


def measure(sizes: Sizes) -> list[Result]:
    """rows/s and milliseconds per batch of each mode per batch size, ``repeats`` alternating rounds."""
    results = []
    with scratch_db("delivery") as engine, temp_topics("delivery") as (topic,):
        for batch in sizes.batches:
            plain = bench_config(topic, batch)
            exact = bench_config(
                topic,
                batch,
                delivery="exactly_once",
                kafka={"transactional_id_prefix": f"bench-{uuid.uuid4().hex[:8]}"},
            )
            producer = make_producer(plain)
            runs: dict[str, list[RunStats]] = {"at_least_once": [], "exactly_once": []}
            for _ in range(sizes.repeats):
                runs["at_least_once"].append(_timed(plain, engine, sizes.rows, producer))
                runs["exactly_once"].append(_timed(exact, engine, sizes.rows, None))
            producer.flush(10)
            for mode, stats in runs.items():
                results.append(
                    Result(
                        f"relay_{mode}",
                        batch,
                        "rows/s",
                        [rate(s.published, s.elapsed_seconds) for s in stats],
                    )
                )
                per_batch = [1000 * s.publish_seconds / s.batches for s in stats]
                results.append(Result(f"{mode}_batch_ms", batch, "ms", per_batch))
            commits = [1000 * s.commit_seconds / s.batches for s in runs["exactly_once"]]
            results.append(Result("exactly_once_commit_ms", batch, "ms", commits))
    return results
