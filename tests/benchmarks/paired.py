"""The project's relay against the naive relay and the lean loop (``lean.py``, issue 30's yardstick) in
alternating runs: naive, naive recording the run id, lean, project, naive, ... each on a fresh backlog of
the same size, so that drift of a shared machine (other load, the database's background work) hits all
alike. The separate ``naive`` and ``project`` components run one after the other and their ratio moved by
up to 0.3 between runs of the same code on this machine.

``naive_relay_run_id_paired`` is the naive loop whose ``SENT`` update also records ``sent_at``, the run id
and a cleared ``next_attempt_at``, as the project's relay does: the project against it compares the two
doing the same bookkeeping, and it against the plain naive loop shows what that bookkeeping costs the
database."""

from __future__ import annotations

from tests.benchmarks.common import (
    Result,
    Sizes,
    bench_config,
    bench_run_id,
    make_producer,
    scratch_db,
    temp_topics,
)
from tests.benchmarks.lean import lean_producer, lean_rate
from tests.benchmarks.naive import naive_rate
from tests.benchmarks.project import project_rate


def measure(sizes: Sizes) -> list[Result]:
    """rows/s of each relay per batch size, ``repeats`` alternating rounds."""
    results = []
    with scratch_db("paired") as engine, temp_topics("paired") as (topic,):
        for batch in sizes.batches:
            config = bench_config(topic, batch)
            producer, lean = make_producer(config), lean_producer()
            naive: list[float] = []
            naive_run_id: list[float] = []
            lean_loop: list[float] = []
            project: list[float] = []
            for _ in range(sizes.repeats):
                naive.append(naive_rate(engine, topic, producer, batch, sizes.rows))
                naive_run_id.append(naive_rate(engine, topic, producer, batch, sizes.rows, bench_run_id()))
                lean_loop.append(lean_rate(engine, topic, lean, batch, sizes.rows))
                project.append(project_rate(config, engine, producer, sizes.rows))
            producer.flush(10)
            lean.flush(10)
            results.append(Result("naive_relay_paired", batch, "rows/s", naive))
            results.append(Result("naive_relay_run_id_paired", batch, "rows/s", naive_run_id))
            results.append(Result("lean_relay_paired", batch, "rows/s", lean_loop))
            results.append(Result("project_relay_paired", batch, "rows/s", project))
    return results
