"""Low-latency mode: p50/p99 from "row became eligible" to "broker acked" at a steady offered load.

A writer thread inserts ``latency_rate`` rows/s (a small multi-row INSERT + COMMIT every 10 ms; each row's
``created_at`` is the DB clock at insert, just before its commit). Meanwhile one relay run in polling mode
(``RunRequest(poll_interval_seconds=...)``) keeps relaying for the whole time budget. The producer handed to
the relay is wrapped so each delivery report's arrival time is noted per row (``outbox-row-id`` header):
latency = ack time - created_at, both on this machine's clock.
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from typing import Any

from sqlalchemy import Engine, text

from tests.benchmarks.common import (
    KEYS,
    PAYLOAD,
    Result,
    Sizes,
    bench_config,
    make_producer,
    scratch_db,
    temp_topics,
)
from tests.benchmarks.project import run_project

TICK = 0.01
INSERT = (
    "INSERT INTO {table} (message_id, aggregate_id, event_type, topic, payload) "
    "VALUES (%s, %s, 'BenchEvent', %s, %s)"
)


class AckTimes:
    """A producer that passes everything through and notes when each row's delivery report arrived."""

    def __init__(self, producer: Any) -> None:
        self.producer = producer
        self.acked: dict[int, float] = {}

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        row_id = dict(kwargs.get("headers") or []).get("outbox-row-id")
        callback = kwargs.get("on_delivery") or kwargs.get("callback")
        if row_id is None or callback is None:
            raise RuntimeError("latency: the relay no longer passes an outbox-row-id header and on_delivery")
        name = "on_delivery" if "on_delivery" in kwargs else "callback"

        def noted(err: Any, msg: Any) -> None:
            if err is None:
                self.acked[int(row_id)] = time.time()
            callback(err, msg)

        self.producer.produce(topic, *args, **{**kwargs, name: noted})

    def __getattr__(self, name: str) -> Any:
        return getattr(self.producer, name)


def offered_load(
    engine: Engine,
    topic: str,
    per_second: int,
    seconds: float,
    out: list[int],
    table: str = "outbox_message",
    stop: threading.Event | None = None,
) -> None:
    """Insert ``per_second`` rows/s into ``table`` for ``seconds`` or until ``stop`` is set (catching up if a
    tick ran late); ``out`` gets the count."""
    insert = INSERT.format(table=table)
    raw = engine.raw_connection()
    cur = raw.cursor()
    written = 0
    started = time.perf_counter()
    try:
        while (elapsed := time.perf_counter() - started) < seconds and not (stop and stop.is_set()):
            due = int(elapsed * per_second) - written
            if due > 0:
                cur.executemany(
                    insert,
                    [(str(uuid.uuid4()), f"key-{(written + i) % KEYS}", topic, PAYLOAD) for i in range(due)],
                )
                raw.commit()
                written += due
            time.sleep(max(0.0, TICK - (time.perf_counter() - started - elapsed)))
    finally:
        cur.close()
        raw.close()
        out.append(written)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p * len(ordered)))]


def one_run(sizes: Sizes, engine: Engine, topic: str) -> dict[str, float]:
    config = bench_config(topic, sizes.ref_batch)
    # The relay's producer reports failures only; this one reports every delivery, to time each ack (the
    # relay's publisher takes either).
    producer = AckTimes(make_producer(config, **{"delivery.report.only.error": False}))
    written: list[int] = []
    writer = threading.Thread(
        target=offered_load, args=(engine, topic, sizes.latency_rate, sizes.latency_seconds, written)
    )
    writer.start()
    stats, _seconds = run_project(
        config,
        engine,
        producer,
        time_budget_seconds=sizes.latency_seconds + 2,
        poll_interval_seconds=sizes.poll_interval,
    )
    writer.join()
    with engine.connect() as conn:
        created = dict(conn.execute(text("SELECT id, UNIX_TIMESTAMP(created_at) FROM outbox_message")).all())
    if not written or stats.published != written[0] or len(producer.acked) != written[0]:
        raise RuntimeError(f"latency: wrote {written}, relay published {stats.published} ({stats})")
    latencies = [(acked - float(created[row_id])) * 1000 for row_id, acked in producer.acked.items()]
    return {
        "p50": statistics.median(latencies),
        "p99": percentile(latencies, 0.99),
        "max": max(latencies),
        "offered_rows_per_s": written[0] / sizes.latency_seconds,
        "polls": stats.polls,
    }


def measure(sizes: Sizes) -> list[Result]:
    runs = []
    for _ in range(sizes.repeats):
        with scratch_db("latency") as engine, temp_topics("latency") as (topic,):
            runs.append(one_run(sizes, engine, topic))
    extra = {
        "poll_interval_seconds": sizes.poll_interval,
        "offered_rows_per_s": [round(r["offered_rows_per_s"]) for r in runs],
        "max_ms": [round(r["max"], 1) for r in runs],
        "seconds_per_run": sizes.latency_seconds,
    }
    return [
        Result("latency_p50", sizes.ref_batch, "ms", [r["p50"] for r in runs], extra),
        Result("latency_p99", sizes.ref_batch, "ms", [r["p99"] for r in runs], extra),
    ]
