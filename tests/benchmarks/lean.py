"""The leanest correct loop: issue 30's yardstick for the relay's overhead, written as that issue writes it.

Raw PyMySQL (no SQLAlchemy), one connection in READ COMMITTED; per batch ``SELECT id, message_id, key,
payload ... WHERE status='NEW' ORDER BY id LIMIT B FOR UPDATE SKIP LOCKED``, produce each row with one
header (its message id), lz4, idempotent, ``acks=all``; ``flush``; ``UPDATE ... SET status='SENT',
sent_at=NOW(6) WHERE id IN (...)``; ``COMMIT``. Correct for the simple case only (a failed flush aborts
the run; no retries, no per-message outcome), and faster than ``naive`` (SQLAlchemy, five headers).
"""

from __future__ import annotations

import time
from typing import Any

import pymysql
from confluent_kafka import Producer
from sqlalchemy import Engine

from tests.benchmarks.common import BOOTSTRAP, fresh_backlog, rate

SELECT = (
    "SELECT id, message_id, aggregate_id, payload FROM outbox_message WHERE status = 'NEW' "
    "ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED"
)


def lean_producer() -> Producer:
    producer = Producer(
        {
            "bootstrap.servers": BOOTSTRAP,
            "enable.idempotence": True,
            "acks": "all",
            "compression.type": "lz4",
            "linger.ms": 50,
            "delivery.report.only.error": True,
        }
    )
    producer.list_topics(timeout=10)  # connected before the clock starts
    return producer


def _connect(engine: Engine) -> Any:
    url = engine.url
    conn = pymysql.connect(
        host=url.host or "127.0.0.1",
        port=url.port or 3306,
        user=url.username or "root",
        password=url.password or "",
        database=url.database,
        charset="utf8mb4",
        autocommit=False,
    )
    with conn.cursor() as cur:
        cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
    conn.commit()
    return conn


def run_lean(
    engine: Engine, producer: Producer, topic: str, batch: int, until: float | None = None, poll: float = 0.05
) -> tuple[int, float]:
    """Drain the table; returns (rows sent, seconds). With ``until`` (a ``perf_counter`` time) it polls an
    empty table every ``poll`` seconds until then, as a polling relay that runs for good does."""
    conn = _connect(engine)
    errors: list[Any] = []

    def on_delivery(err: Any, _msg: Any) -> None:
        if err is not None:
            errors.append(err)

    sent, started = 0, time.perf_counter()
    try:
        with conn.cursor() as cur:
            while True:
                cur.execute(SELECT, (batch,))
                rows = cur.fetchall()
                if not rows:
                    conn.commit()
                    if until is None or time.perf_counter() >= until:
                        break
                    time.sleep(poll)
                    continue
                for _id, message_id, key, payload in rows:
                    producer.produce(
                        topic,
                        payload.encode(),
                        key.encode(),
                        headers=[("outbox-message-id", message_id.encode())],
                        on_delivery=on_delivery,
                    )
                if producer.flush(30) or errors:
                    raise RuntimeError(f"lean loop: the broker did not acknowledge the batch ({errors[:3]})")
                ids = ",".join(str(r[0]) for r in rows)
                cur.execute(
                    f"UPDATE outbox_message SET status = 'SENT', sent_at = NOW(6) WHERE id IN ({ids})"
                )
                conn.commit()
                sent += len(rows)
    finally:
        conn.close()
    return sent, time.perf_counter() - started


def lean_rate(engine: Engine, topic: str, producer: Producer, batch: int, rows: int) -> float:
    """rows/s of one lean run over a fresh backlog of ``rows`` (fails loudly unless it sent them all)."""
    fresh_backlog(engine, topic, rows)
    sent, seconds = run_lean(engine, producer, topic, batch)
    if sent != rows:
        raise RuntimeError(f"lean loop batch {batch}: sent {sent} of {rows}")
    return rate(sent, seconds)
