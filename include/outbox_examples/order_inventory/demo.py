"""Steps of ``make demo`` that are not Airflow runs: set up, place orders, run inventory, report.

Usage: python -m outbox_examples.order_inventory.demo setup|place N|inventory|compensate|report
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer, Producer
from sqlalchemy import create_engine, text

from outbox_examples import EXAMPLES_SQL_DIR
from outbox_examples.demo_support import bootstrap, db_url, print_summary, read_back, server_url
from outbox_examples.order_inventory.services import (
    ORDER_TOPIC,
    cancel_failed_orders,
    place_orders,
    reserve_stock,
)
from outbox_inbox.consumer import IdempotentConsumer
from outbox_relay.database import apply_ddl, make_engine, recreate_database
from outbox_relay.kafka.publisher import KafkaPublisher

SKUS = {"sku-apple": 4000, "sku-pear": 4000, "sku-plum": 1800}  # plum runs out: some orders FAIL
RESULT_TOPIC = "orders.results"
STATE = Path(os.environ.get("DEMO_STATE", ".run/demo-state.json"))


def setup() -> None:
    url = recreate_database(server_url(), os.environ["DEMO_DB"])
    engine = create_engine(url)
    apply_ddl(engine)
    apply_ddl(engine, EXAMPLES_SQL_DIR / "order_inventory.sql")
    with engine.begin() as conn:
        for sku, stock in SKUS.items():
            conn.execute(text("INSERT INTO inventory (sku, stock) VALUES (:s, :n)"), {"s": sku, "n": stock})
    engine.dispose()
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps({"started": time.time()}))


def place(count: int) -> None:
    engine = make_engine(db_url())
    started = time.monotonic()
    place_orders(engine, count, list(SKUS))
    print(
        f"order service: placed {count} orders (order + outbox row per transaction) "
        f"in {time.monotonic() - started:.1f}s"
    )
    engine.dispose()


def inventory_service(
    time_budget_seconds: float = 180, idle_seconds: float = 30, live: bool = False
) -> dict[str, object]:
    """The inventory service: consume orders with its inbox, reserve stock, answer on orders.results. It
    stops once it has read every partition to its end (the demo publishes all orders first), or, ``live``,
    after ``idle_seconds`` without an order."""
    engine = make_engine(db_url())
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(),
            "group.id": "inventory-service",
            "isolation.level": "read_committed",  # never what a relay's aborted transaction left
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
            "enable.partition.eof": True,
        }
    )
    consumer.subscribe([ORDER_TOPIC])
    results = KafkaPublisher(
        Producer({"bootstrap.servers": bootstrap(), "enable.idempotence": True, "acks": "all"}), 30
    )
    service = IdempotentConsumer("inventory", engine, consumer, results, RESULT_TOPIC, reserve_stock)
    stats = service.run(time_budget_seconds, idle_seconds, stop_at_end=not live)
    consumer.close()
    engine.dispose()
    return {k: v for k, v in stats.as_dict().items() if k != "errors"}


def inventory() -> None:
    print(f"inventory service: {json.dumps(inventory_service())}")


def compensate() -> None:
    engine = make_engine(db_url())
    with engine.begin() as conn:
        cancelled = cancel_failed_orders(conn)
    engine.dispose()
    print(f"order service: cancelled {cancelled} orders whose outbox message ended FAILED")


def report() -> int:
    engine = make_engine(db_url())
    with engine.connect() as conn:
        written = conn.execute(text("SELECT COUNT(*) FROM orders")).scalar_one()
        rows: dict[str, int] = dict(
            conn.execute(text("SELECT status, COUNT(*) FROM outbox_message GROUP BY status")).all()
        )
        all_ids = {r[0] for r in conn.execute(text("SELECT message_id FROM outbox_message"))}
        failed_ids = {
            r[0] for r in conn.execute(text("SELECT message_id FROM outbox_message WHERE status='FAILED'"))
        }
        dup_effects = conn.execute(
            text(
                "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) n FROM stock_movement GROUP BY order_id) x"
            )
        ).scalar_one()
        cancelled = conn.execute(text("SELECT COUNT(*) FROM orders WHERE status='CANCELLED'")).scalar_one()
    engine.dispose()
    landed = read_back(ORDER_TOPIC, all_ids)
    published, total_msgs = landed.ids, landed.total
    lost = len(all_ids - published - failed_ids)
    elapsed = time.time() - json.loads(STATE.read_text())["started"]
    table = [
        ("rows written", written),
        ("published (distinct ids on topic)", len(published & all_ids)),
        ("messages on topic for these rows", total_msgs),
        ("confirmed", rows.get("CONFIRMED", 0)),
        ("failed (consumer said FAILED)", rows.get("FAILED", 0)),
        ("still NEW/SENT", rows.get("NEW", 0) + rows.get("SENT", 0)),
        ("orders cancelled", cancelled),
        ("lost (must be 0)", lost),
        ("duplicate business effects (must be 0)", int(dup_effects)),
        ("elapsed", f"{elapsed:.1f}s"),
    ]
    print_summary("order -> inventory", table)
    return 0 if lost == 0 and dup_effects == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m outbox_examples.order_inventory.demo")
    parser.add_argument("step", choices=["setup", "place", "inventory", "compensate", "report"])
    parser.add_argument("count", nargs="?", type=int, default=2000)
    args = parser.parse_args()
    if args.step == "setup":
        setup()
    elif args.step == "place":
        place(args.count)
    elif args.step == "inventory":
        inventory()
    elif args.step == "compensate":
        compensate()
    else:
        return report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
