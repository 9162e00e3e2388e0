"""The project's relay, driven only through its public API (so the benchmark follows changes to the core).

``project_relay`` is the one place that knows how a relay is put together; every component that runs the
project's relay (throughput, degradation, latency, the resource child process) goes through it.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.models import RunStats
from outbox_relay.relay.engine import OutboxRelay, RunRequest
from tests.benchmarks.common import (
    Result,
    Sizes,
    bench_config,
    bench_run_id,
    count,
    fresh_backlog,
    make_producer,
    rate,
    scratch_db,
    temp_topics,
)


def project_relay(config: ServiceConfig, engine: Engine, producer: Any = None) -> OutboxRelay:
    """An ``OutboxRelay`` wired like the Airflow task does it (one idempotent, acks=all producer)."""
    publisher = KafkaPublisher(producer or make_producer(config), config.kafka.flush_timeout_seconds)
    return OutboxRelay(config, engine, publisher)


def run_project(
    config: ServiceConfig, engine: Engine, producer: Any = None, **request: Any
) -> tuple[RunStats, float]:
    """One run; returns its stats and the wall seconds of ``run`` alone (producer already connected)."""
    relay = project_relay(config, engine, producer)
    started = time.perf_counter()
    stats = relay.run(RunRequest(run_id=bench_run_id(), **request))
    return stats, time.perf_counter() - started


def check_drained(engine: Engine, stats: RunStats, rows: int, what: str) -> None:
    """A benchmark that did not relay everything measured something else: fail loudly."""
    left = count(engine, "NEW")
    if stats.published != rows or left:
        raise RuntimeError(f"{what}: published {stats.published} of {rows} rows, {left} still NEW ({stats})")


def project_rate(config: ServiceConfig, engine: Engine, producer: Any, rows: int) -> float:
    """rows/s of one project run over a fresh backlog of ``rows`` (fails loudly unless it drained it)."""
    fresh_backlog(engine, config.topic or "", rows)
    stats, seconds = run_project(config, engine, producer)
    check_drained(engine, stats, rows, f"project relay batch {config.batch_size}")
    return rate(stats.published, seconds)


def measure(sizes: Sizes) -> list[Result]:
    """Project relay rows/s per batch size: fresh table and backlog per run, median of ``repeats``."""
    results = []
    with scratch_db("project") as engine, temp_topics("project") as (topic,):
        for batch in sizes.batches:
            config = bench_config(topic, batch)
            producer = make_producer(config)
            samples = [project_rate(config, engine, producer, sizes.rows) for _ in range(sizes.repeats)]
            producer.flush(10)
            results.append(Result("project_relay", batch, "rows/s", samples))
    return results
