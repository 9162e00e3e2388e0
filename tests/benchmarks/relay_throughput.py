"""Relay throughput on a backlog: rows/s for one relay run (plain Python, real MariaDB + broker).

Not a test (speed is never asserted): ``.venv/bin/python -m tests.benchmarks.relay_throughput --rows 100000``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid

from sqlalchemy import create_engine, make_url, text

from outbox_examples.dbsetup import apply_ddl, recreate_database
from outbox_relay.config import ServiceConfig
from outbox_relay.db import make_engine
from tests.conftest import DB_SERVER_URL
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import run_relay


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--keys", type=int, default=1000)
    args = parser.parse_args()
    name = f"outbox_bench_{os.getpid()}"
    url = recreate_database(DB_SERVER_URL, name)
    engine = make_engine(url.render_as_string(hide_password=False))
    apply_ddl(engine)
    topic = f"bench.{uuid.uuid4().hex[:8]}"
    create_topics(topic)
    payload = json.dumps({"order_id": "x" * 36, "sku": "sku-000001", "quantity": 3, "note": "y" * 220})
    started = time.monotonic()
    with engine.begin() as conn:
        chunk = 5000
        for start in range(0, args.rows, chunk):
            conn.execute(
                text(
                    "INSERT INTO outbox_message (message_id, aggregate_id, event_type, topic, payload) "
                    "VALUES (:m, :k, 'Bench', :t, :p)"
                ),
                [
                    {"m": str(uuid.uuid4()), "k": f"key-{i % args.keys}", "t": topic, "p": payload}
                    for i in range(start, min(start + chunk, args.rows))
                ],
            )
    inserted = time.monotonic() - started
    config = ServiceConfig.model_validate({"service": "bench", "topic": topic, "batch_size": args.batch})
    stats = run_relay(config, engine, run_id="bench")
    rate = stats.published / stats.elapsed_seconds if stats.elapsed_seconds else 0.0
    print(
        json.dumps(
            {
                "rows": args.rows,
                "batch_size": args.batch,
                "payload_bytes": len(payload),
                "insert_seconds": round(inserted, 2),
                "relay_seconds": stats.elapsed_seconds,
                "relay_rows_per_second": round(rate),
                "batches": stats.batches,
                "published": stats.published,
            }
        )
    )
    engine.dispose()
    admin = create_engine(make_url(DB_SERVER_URL))
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE `{name}`"))


if __name__ == "__main__":
    main()
