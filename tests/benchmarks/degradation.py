"""Degradation: relay rows/s with ``terminal_rows`` already relayed rows in the table vs an empty table.

Both tables get the same NEW backlog; runs alternate between them so machine noise hits both alike. The
terminal rows sit below the backlog's ids, as they do in a table whose cleanup keeps a week of history;
each run's relayed rows stay, so later runs see even more terminal rows.
"""

from __future__ import annotations

from tests.benchmarks.common import (
    Result,
    Sizes,
    bench_config,
    fill,
    fresh_backlog,
    make_producer,
    rate,
    scratch_db,
    temp_topics,
)
from tests.benchmarks.project import check_drained, run_project


def measure(sizes: Sizes) -> list[Result]:
    batch = sizes.ref_batch
    empty_rates, full_rates = [], []
    with (
        scratch_db("empty") as empty,
        scratch_db("terminal") as full,
        temp_topics("degradation") as (topic,),
    ):
        config = bench_config(topic, batch)
        producer = make_producer(config)
        fill(full, topic, sizes.terminal_rows, status="SENT")
        for _ in range(sizes.repeats):
            fresh_backlog(empty, topic, sizes.rows)
            stats, seconds = run_project(config, empty, producer)
            check_drained(empty, stats, sizes.rows, "degradation (empty table)")
            empty_rates.append(rate(stats.published, seconds))
            fill(full, topic, sizes.rows)
            stats, seconds = run_project(config, full, producer)
            check_drained(full, stats, sizes.rows, "degradation (terminal rows present)")
            full_rates.append(rate(stats.published, seconds))
    extra = {"terminal_rows": sizes.terminal_rows, "backlog_rows": sizes.rows}
    return [
        Result("relay_empty_table", batch, "rows/s", empty_rates, extra),
        Result("relay_with_terminal_rows", batch, "rows/s", full_rates, extra),
    ]
