"""The two ceilings no relay can beat: the broker alone and the database alone, at the same batch size.

Kafka: a raw confluent-kafka loop (idempotent, acks=all, the relay's linger) producing the same messages
(key, ~300-byte value, five headers), flushing after every batch as a relay must before it commits.
MySQL: ``UPDATE outbox_message SET status='SENT' WHERE id IN (...)`` + ``COMMIT`` per batch on the same
table, with the ids known beforehand (no SELECT, no broker).
"""

from __future__ import annotations

import time

from sqlalchemy import Engine, text

from tests.benchmarks.common import (
    KEYS,
    PAYLOAD,
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
from tests.benchmarks.naive import UPDATE

Message = tuple[bytes, bytes, list[tuple[str, bytes]]]


def _messages(rows: int) -> list[Message]:
    value = PAYLOAD.encode()
    return [
        (
            f"key-{i % KEYS}".encode(),
            value,
            [
                ("outbox-message-id", f"{i:036d}".encode()),
                ("outbox-service", SERVICE.encode()),
                ("outbox-source-table", b"outbox_message"),
                ("outbox-row-id", str(i).encode()),
                ("outbox-event-type", b"BenchEvent"),
            ],
        )
        for i in range(rows)
    ]


def kafka_ceiling(sizes: Sizes) -> list[Result]:
    messages = _messages(sizes.rows)
    results = []
    with temp_topics("kafka") as (topic,):
        for batch in sizes.batches:
            producer = make_producer(bench_config(topic, batch))
            samples = []
            for _ in range(sizes.repeats):
                started = time.perf_counter()
                for start in range(0, len(messages), batch):
                    for key, value, headers in messages[start : start + batch]:
                        produce(producer, topic, value, key, headers)
                    if producer.flush(30):
                        raise RuntimeError("kafka ceiling: messages not acknowledged within 30 s")
                samples.append(rate(len(messages), time.perf_counter() - started))
            results.append(Result("kafka_ceiling", batch, "rows/s", samples))
    return results


def mysql_ceiling(sizes: Sizes) -> list[Result]:
    results = []
    with scratch_db("mysql") as engine:
        for batch in sizes.batches:
            samples = []
            samples = [update_ceiling_rate(engine, batch, sizes.rows) for _ in range(sizes.repeats)]
            results.append(Result("mysql_ceiling", batch, "rows/s", samples))
    return results


def update_ceiling_rate(engine: Engine, batch: int, rows: int) -> float:
    """rows/s of the raw batched ``SENT`` update alone over a fresh backlog of ``rows``: the most any relay
    that marks rows one batch at a time can reach on this database."""
    fresh_backlog(engine, "bench.mysql", rows)
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT id FROM outbox_message ORDER BY id"))]
        conn.commit()
        started = time.perf_counter()
        for start in range(0, len(ids), batch):
            with conn.begin():
                conn.execute(UPDATE, {"ids": ids[start : start + batch]})
        return rate(len(ids), time.perf_counter() - started)
