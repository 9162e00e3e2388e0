"""Confirmation ingestion rows/s: ``ConfirmationIngester`` applying a pre-filled result topic.

The result topic holds one SUCCESS message per SENT row (the format ``parse_confirmation`` reads). The
consumer is configured like the Airflow hook's. Rows/s counts from the first message received, so the
consumer-group join (seconds on some brokers) is not charged to ingestion; the rate including the join
is reported beside it.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer
from sqlalchemy import Engine, text

from outbox_relay.confirmations import ConfirmationIngester
from tests.benchmarks.common import (
    BOOTSTRAP,
    Result,
    Sizes,
    bench_config,
    count,
    fill,
    make_producer,
    produce,
    rate,
    scratch_db,
    temp_topics,
    truncate,
)


class TimedConsumer:
    """Passes everything to the real consumer; notes when the first message arrived."""

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.first_message_at: float | None = None

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]:
        messages = self.consumer.consume(num_messages, timeout=timeout)
        if messages and self.first_message_at is None:
            self.first_message_at = time.perf_counter()
        return list(messages)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.consumer, name)


def consumer(topic: str) -> Consumer:
    """The settings ``OutboxConsumerHook`` applies, with a fresh group (reads the topic from the start)."""
    client = Consumer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "auto.offset.reset": "earliest",
            "session.timeout.ms": 10_000,
            "heartbeat.interval.ms": 1_000,
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    client.subscribe([topic])
    return client


def prefill_results(engine: Engine, topic: str, result_topic: str, rows: int) -> None:
    """``rows`` SENT rows and one SUCCESS confirmation per row on the result topic."""
    truncate(engine)
    fill(engine, topic, rows, status="SENT")
    with engine.connect() as conn:
        ids = [r[0] for r in conn.execute(text("SELECT message_id FROM outbox_message"))]
    producer = make_producer(bench_config(topic, 1000))
    for mid in ids:
        produce(
            producer, result_topic, json.dumps({"message_id": mid, "status": "SUCCESS"}).encode(), b"", []
        )
    if producer.flush(60):
        raise RuntimeError("confirmations: result topic not filled within 60 s")


def measure(sizes: Sizes) -> list[Result]:
    samples, with_join = [], []
    for _ in range(sizes.repeats):
        with scratch_db("confirm") as engine, temp_topics("confirm", 2, partitions=1) as (topic, results):
            config = bench_config(topic, sizes.ref_batch, confirmation={"topic": results})
            prefill_results(engine, topic, results, sizes.rows)
            timed = TimedConsumer(consumer(results))
            started = time.perf_counter()
            stats = ConfirmationIngester(config, engine, timed).run(3600, idle_seconds=30)
            ended = time.perf_counter()
            timed.consumer.close()
            if stats.confirmed != sizes.rows or count(engine, "CONFIRMED") != sizes.rows:
                raise RuntimeError(
                    f"confirmations: {stats.confirmed} of {sizes.rows} rows confirmed ({stats})"
                )
            samples.append(rate(stats.confirmed, ended - (timed.first_message_at or started)))
            with_join.append(round(rate(stats.confirmed, ended - started)))
    return [Result("confirmation_ingest", None, "rows/s", samples, {"rows_per_s_incl_group_join": with_join})]
