"""Retention delete rows/s next to insert rows/s, at the same chunk size.

Insert: multi-row ``INSERT`` of ``batch`` rows per statement and transaction (a bulk writer, faster than
any service writing one business transaction at a time). Delete: ``RetentionCleaner`` with
``retention.chunk_size = batch`` on the rows just inserted (terminal, older than ``retention.days``). If
cleanup deletes at least as fast as rows can be inserted, the table cannot grow without bound.
"""

from __future__ import annotations

from outbox_relay.retention import RetentionCleaner
from tests.benchmarks.common import (
    Result,
    Sizes,
    bench_config,
    count,
    insert_rows,
    rate,
    scratch_db,
    truncate,
)

EIGHT_DAYS = 8 * 86_400


def measure(sizes: Sizes) -> list[Result]:
    results = []
    with scratch_db("retention") as engine:
        for batch in sizes.batches:
            config = bench_config("bench.retention", batch, retention={"days": 7, "chunk_size": batch})
            inserts, deletes = [], []
            for _ in range(sizes.repeats):
                truncate(engine)
                seconds = insert_rows(engine, "bench.retention", sizes.rows, "SENT", EIGHT_DAYS, chunk=batch)
                inserts.append(rate(sizes.rows, seconds))
                stats = RetentionCleaner(config, engine).run(3600)
                if stats.deleted_terminal != sizes.rows or count(engine, "SENT"):
                    raise RuntimeError(
                        f"retention deleted {stats.deleted_terminal} of {sizes.rows} ({stats})"
                    )
                deletes.append(rate(stats.deleted_terminal, stats.elapsed_seconds))
            results += [
                Result("insert", batch, "rows/s", inserts),
                Result("retention_delete", batch, "rows/s", deletes),
            ]
    return results
