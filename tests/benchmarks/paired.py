"""The project's relay against the naive relay in alternating runs: naive, project, naive, project, ...
each on a fresh backlog of the same size, so that drift of a shared machine (other load, the database's
background work) hits both alike. The separate ``naive`` and ``project`` components run one after the
other and their ratio moved by up to 0.3 between runs of the same code on this machine."""

from __future__ import annotations

from tests.benchmarks.common import (
    Result,
    Sizes,
    bench_config,
    fresh_backlog,
    make_producer,
    rate,
    scratch_db,
    temp_topics,
)
from tests.benchmarks.naive import run_naive
from tests.benchmarks.project import check_drained, run_project


def measure(sizes: Sizes) -> list[Result]:
    """rows/s of each relay per batch size, ``repeats`` alternating pairs."""
    results = []
    with scratch_db("paired") as engine, temp_topics("paired") as (topic,):
        for batch in sizes.batches:
            config = bench_config(topic, batch)
            producer = make_producer(config)
            naive, project = [], []
            for _ in range(sizes.repeats):
                fresh_backlog(engine, topic, sizes.rows)
                sent, seconds = run_naive(engine, producer, batch)
                if sent != sizes.rows:
                    raise RuntimeError(f"naive relay batch {batch}: sent {sent} of {sizes.rows}")
                naive.append(rate(sent, seconds))
                fresh_backlog(engine, topic, sizes.rows)
                stats, seconds = run_project(config, engine, producer)
                check_drained(engine, stats, sizes.rows, f"project relay batch {batch}")
                project.append(rate(stats.published, seconds))
            producer.flush(10)
            results.append(Result("naive_relay_paired", batch, "rows/s", naive))
            results.append(Result("project_relay_paired", batch, "rows/s", project))
    return results
