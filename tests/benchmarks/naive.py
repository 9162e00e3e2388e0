"""The naive reference relay the project's relay is measured against.

It is the loop anyone would write first, on the same table with the same indexes, the same driver and
engine settings (READ COMMITTED), the same producer settings and the same message (key, value, the
project's five headers). Per batch: ``SELECT ... WHERE status='NEW' ORDER BY id LIMIT B FOR UPDATE SKIP
LOCKED``, produce all, ``flush``, ``UPDATE ... SET status='SENT' WHERE id IN (...)``, ``COMMIT``.
It is correct only in the simple case (no retries, no per-message outcome, a failed flush aborts).
Given a run id, its update also records what the project's relay records with ``SENT``: ``sent_at``, the
run id and a cleared ``next_attempt_at``, so that the two can be compared doing the same bookkeeping.
"""

from __future__ import annotations

import time
from typing import Any

from confluent_kafka import Producer
from sqlalchemy import Connection, Engine, bindparam, text

from tests.benchmarks.common import (
    SERVICE,
    Result,
    Sizes,
    bench_config,
    fresh_backlog,
    make_producer,
    produce,
    rate,
    scratch_db,
    temp_topics,
)

SELECT = text(
    "SELECT id, message_id, aggregate_id, event_type, topic, payload FROM outbox_message "
    "WHERE status = 'NEW' ORDER BY id LIMIT :limit FOR UPDATE SKIP LOCKED"
)
UPDATE = text("UPDATE outbox_message SET status = 'SENT' WHERE id IN :ids").bindparams(
    bindparam("ids", expanding=True)
)
UPDATE_WITH_RUN_ID = text(
    "UPDATE outbox_message SET status = 'SENT', sent_at = NOW(6), relay_run_id = :run_id, "
    "next_attempt_at = NULL WHERE id IN :ids"
).bindparams(bindparam("ids", expanding=True))


def _produce_all(producer: Producer, rows: list[Any], errors: list[Any]) -> None:
    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    for row_id, message_id, key, event_type, topic, payload in rows:
        headers = [
            ("outbox-message-id", message_id.encode()),
            ("outbox-service", SERVICE.encode()),
            ("outbox-source-table", b"outbox_message"),
            ("outbox-row-id", str(row_id).encode()),
            ("outbox-event-type", event_type.encode()),
        ]
        produce(producer, topic, payload.encode(), key.encode(), headers, on_delivery=on_delivery)


def relay_batch(conn: Connection, producer: Producer, batch: int, run_id: str | None = None) -> int:
    """One batch in one transaction; returns how many rows it sent (0 = drained)."""
    errors: list[Any] = []
    with conn.begin():
        rows = conn.execute(SELECT, {"limit": batch}).all()
        if not rows:
            return 0
        _produce_all(producer, rows, errors)
        if producer.flush(30) or errors:
            raise RuntimeError(f"naive relay: broker did not acknowledge the batch ({errors[:3]})")
        ids = [r[0] for r in rows]
        if run_id is None:
            conn.execute(UPDATE, {"ids": ids})
        else:
            conn.execute(UPDATE_WITH_RUN_ID, {"ids": ids, "run_id": run_id})
    return len(rows)


def run_naive(engine: Engine, producer: Producer, batch: int, run_id: str | None = None) -> tuple[int, float]:
    """Drain the table; returns (rows sent, seconds)."""
    sent = 0
    started = time.perf_counter()
    with engine.connect() as conn:
        while n := relay_batch(conn, producer, batch, run_id):
            sent += n
    return sent, time.perf_counter() - started


def naive_rate(
    engine: Engine, topic: str, producer: Producer, batch: int, rows: int, run_id: str | None = None
) -> float:
    """rows/s of one naive run over a fresh backlog of ``rows`` (fails loudly unless it sent them all)."""
    fresh_backlog(engine, topic, rows)
    sent, seconds = run_naive(engine, producer, batch, run_id)
    if sent != rows:
        raise RuntimeError(f"naive relay batch {batch}: sent {sent} of {rows}")
    return rate(sent, seconds)


def measure(sizes: Sizes) -> list[Result]:
    results = []
    with scratch_db("naive") as engine, temp_topics("naive") as (topic,):
        for batch in sizes.batches:
            producer = make_producer(bench_config(topic, batch))
            samples = [naive_rate(engine, topic, producer, batch, sizes.rows) for _ in range(sizes.repeats)]
            results.append(Result("naive_relay", batch, "rows/s", samples))
    return results
