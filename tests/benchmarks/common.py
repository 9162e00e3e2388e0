"""What every benchmark component shares: a scratch database, the payload, fast backlogs, topics, results.

Every component gets its own database (dropped afterwards) and its own topics (deleted afterwards, so the
in-memory broker does not hold every run's messages), on the same MariaDB and the same broker.
"""

from __future__ import annotations

import json
import os
import statistics
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, create_engine, make_url, text

from outbox_relay.config import ServiceConfig
from outbox_relay.kafka.records import RELAY_PRODUCER
from outbox_relay.store.connect import make_engine
from outbox_relay.store.ddl import apply_ddl, recreate_database
from tests.integration.kafka_tools import create_topics
from tests.stack import BOOTSTRAP, BROKER, DB_SERVER_URL

__all__ = ["BOOTSTRAP", "BROKER", "DB_SERVER_URL", "create_topics"]

SERVICE = "bench"
KEYS = 1000  # distinct aggregate ids: messages spread over partitions, per-key order is exercised
# ~300 bytes of JSON, the size the issue asks for.
PAYLOAD = json.dumps({"order_id": "x" * 36, "sku": "sku-000001", "quantity": 3, "note": "y" * 220})
# Only plain placeholders in VALUES: PyMySQL then sends each chunk as one multi-row INSERT.
INSERT_SQL = (
    "INSERT INTO outbox_message (message_id, aggregate_id, event_type, topic, payload, status, "
    "created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)

COPY_SQL = text(
    "INSERT INTO outbox_message (message_id, aggregate_id, event_type, topic, payload, status, created_at, "
    "updated_at) SELECT UUID(), aggregate_id, event_type, topic, payload, status, created_at, updated_at "
    "FROM outbox_message WHERE id > :before ORDER BY id LIMIT :n"
)


@dataclass
class Result:
    """One figure of the table: the median of ``samples`` (one per run)."""

    component: str
    batch: int | None
    unit: str
    samples: list[float]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def value(self) -> float:
        return float(statistics.median(self.samples)) if self.samples else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "component": self.component,
            "batch": self.batch,
            "unit": self.unit,
            "median": round(self.value, 3),
            "samples": [round(s, 3) for s in self.samples],
            **({"extra": self.extra} if self.extra else {}),
        }


@dataclass(frozen=True)
class Sizes:
    """How big each component's run is (``--smoke`` shrinks everything)."""

    rows: int = 200_000
    repeats: int = 3
    batches: tuple[int, ...] = (500, 2000, 5000)
    terminal_rows: int = 1_000_000
    resource_rows: int = 1_000_000
    latency_seconds: float = 30.0
    latency_rate: int = 1000
    poll_interval: float = 0.05
    idle_seconds: float = 300.0  # the window the idle cost of services is measured over
    idle_services: tuple[int, ...] = (1, 10)
    peer_idle_seconds: float = 60.0  # the window each peer's idle cost is measured over (``peers``)
    steady_rates: tuple[int, ...] = (1, 1000)  # ``idle``: rows/s of steady traffic on an event-driven service
    steady_seconds: float = 60.0
    dag_parse_seconds: float | None = (
        None  # the DAG processor's min_file_process_interval (None: Airflow's 30)
    )
    idle_designs: tuple[str, ...] = ("minute", "events", "linger")  # see idle.DESIGNS
    latency_samples: int = 3  # commit-to-SENT samples per design (smallest service count)
    latency_at_largest: bool = True  # the same samples at the largest service count

    @property
    def ref_batch(self) -> int:
        """The batch size single-batch components use: the one nearest the project's default of 2000."""
        return min(self.batches, key=lambda b: abs(b - 2000))


def bench_run_id() -> str:
    """The run id a benchmark relay run records in every row it marks SENT: unique per run, and as long as
    the id Airflow gives an asset-triggered run (``@rows``), 58 characters, since what recording it costs
    the database grows with its length."""
    return f"asset_triggered__{datetime.now(UTC).isoformat(timespec='microseconds')}_{uuid.uuid4().hex[:8]}"


def rate(rows: int, seconds: float) -> float:
    return rows / seconds if seconds > 0 else 0.0


@contextmanager
def scratch_db(label: str) -> Iterator[Engine]:
    """A fresh database with the project's DDL (same table and indexes the relay runs on)."""
    name = f"outbox_bench_{label}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    url = recreate_database(DB_SERVER_URL, name)
    engine = make_engine(url.render_as_string(hide_password=False))
    apply_ddl(engine)
    try:
        yield engine
    finally:
        engine.dispose()
        admin = create_engine(make_url(DB_SERVER_URL).set(database=None))
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def db_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def truncate(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("TRUNCATE TABLE outbox_message"))


def insert_rows(
    engine: Engine,
    topic: str,
    rows: int,
    status: str = "NEW",
    age_seconds: float = 0,
    chunk: int = 5000,
) -> float:
    """Insert ``rows`` outbox rows from the client, ``chunk`` per multi-row INSERT and transaction (what a
    bulk writer does); returns seconds."""
    started = time.perf_counter()
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute("SELECT NOW(6) - INTERVAL %s MICROSECOND", (int(age_seconds * 1_000_000),))
        (stamp,) = cur.fetchone()  # the DB clock, as the relay and retention read it
        for start in range(0, rows, chunk):
            values = [
                (str(uuid.uuid4()), f"key-{i % KEYS}", "BenchEvent", topic, PAYLOAD, status, stamp, stamp)
                for i in range(start, min(start + chunk, rows))
            ]
            cur.executemany(INSERT_SQL, values)  # PyMySQL turns this into one multi-row INSERT
            raw.commit()
        cur.close()
    finally:
        raw.close()
    return time.perf_counter() - started


def fill(engine: Engine, topic: str, rows: int, status: str = "NEW", seed: int = 5000) -> None:
    """A backlog fast: ``seed`` rows from the client, then copies made by the server (``INSERT ... SELECT``
    of this fill's rows with fresh ``UUID()`` message ids), doubling up to ``rows``."""
    with engine.connect() as conn:
        before = conn.execute(text("SELECT COALESCE(MAX(id), 0) FROM outbox_message")).scalar()
        conn.commit()
        insert_rows(engine, topic, min(rows, seed), status, chunk=seed)
        done = min(rows, seed)
        while done < rows:
            n = min(done, rows - done, 100_000)
            with conn.begin():
                conn.execute(COPY_SQL, {"before": before, "n": n})
            done += n


def fresh_backlog(engine: Engine, topic: str, rows: int) -> None:
    """An empty table, then ``rows`` NEW rows: every run starts from the same state."""
    truncate(engine)
    fill(engine, topic, rows)


def count(engine: Engine, status: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT COUNT(*) FROM outbox_message WHERE status = :s"), {"s": status}
            ).scalar()
            or 0
        )


def bench_config(topic: str, batch: int, **fields: Any) -> ServiceConfig:
    document: dict[str, Any] = {
        "service": SERVICE,
        "topic": topic,
        "batch_size": batch,
        "time_budget_seconds": 3600,
        **fields,
    }
    return ServiceConfig.model_validate(document)


def producer_settings(config: ServiceConfig) -> dict[str, Any]:
    """The settings the relay's producer hook applies (idempotent, acks=all, the service's timing)."""
    return {
        "bootstrap.servers": BOOTSTRAP,
        **RELAY_PRODUCER,
        "linger.ms": config.kafka.linger_ms,
        "message.timeout.ms": config.kafka.delivery_timeout_ms,
    }


def make_producer(config: ServiceConfig, **overrides: Any) -> Producer:
    """A connected producer (metadata fetched), so a timed run does not pay for the first connection."""
    producer = Producer({**producer_settings(config), **overrides})
    producer.list_topics(timeout=10)
    return producer


def produce(producer: Producer, topic: str, value: bytes, key: bytes, headers: Any, **kwargs: Any) -> None:
    """``produce`` that waits for room when the client's local queue is full."""
    while True:
        try:
            producer.produce(topic, value=value, key=key, headers=headers, **kwargs)
            return
        except BufferError:
            producer.poll(0.05)


def new_topic(label: str) -> str:
    return f"bench.{label}.{uuid.uuid4().hex[:8]}"


def delete_topics(*names: str) -> None:
    """Free the broker's memory; a broker that cannot delete topics only keeps them."""
    admin = AdminClient({"bootstrap.servers": BOOTSTRAP})
    for future in admin.delete_topics(list(names), operation_timeout=30).values():
        with suppress(Exception):
            future.result(timeout=30)


@contextmanager
def temp_topics(
    label: str, count_: int = 1, partitions: int = 3, config: dict[str, str] | None = None
) -> Iterator[list[str]]:
    names = [new_topic(f"{label}{i}" if count_ > 1 else label) for i in range(count_)]
    create_topics(*names, partitions=partitions, config=config)
    try:
        yield names
    finally:
        delete_topics(*names)
