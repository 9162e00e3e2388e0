"""The project's relay against the naive relay in alternating runs: naive, project, naive, project, ...
each on a fresh backlog of the same size, so that drift of a shared machine (other load, the database's
background work) hits both alike. The separate ``naive`` and ``project`` components run one after the
other and their ratio moved by up to 0.3 between runs of the same code on this machine."""

from __future__ import annotations

from tests.benchmarks.common import Result, Sizes, bench_config, make_producer, scratch_db, temp_topics
from tests.benchmarks.naive import naive_rate
from tests.benchmarks.project import project_rate


def measure(sizes: Sizes) -> list[Result]:
    """rows/s of each relay per batch size, ``repeats`` alternating pairs."""
    results = []
    with scratch_db("paired") as engine, temp_topics("paired") as (topic,):
        for batch in sizes.batches:
            config = bench_config(topic, batch)
            producer = make_producer(config)
            naive, project = [], []
            for _ in range(sizes.repeats):
                naive.append(naive_rate(engine, topic, producer, batch, sizes.rows))
                project.append(project_rate(config, engine, producer, sizes.rows))
            producer.flush(10)
            results.append(Result("naive_relay_paired", batch, "rows/s", naive))
            results.append(Result("project_relay_paired", batch, "rows/s", project))
    return results
