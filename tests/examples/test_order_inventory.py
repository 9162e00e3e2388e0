"""order -> inventory with a result topic, end to end on the real MariaDB and broker, with every
message delivered twice: one stock movement per order, FAILED orders end FAILED with inventory's
reason and are cancelled once, nothing lost, per-key order kept. (`demo.sh` itself is exercised by
tests/airflow/test_demo_end_to_end.py.)"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from outbox_examples import EXAMPLES_SQL_DIR
from outbox_examples.kafka_groups import group_consumer
from outbox_examples.order_inventory.services import cancel_failed_orders, place_orders, reserve_stock
from outbox_inbox.consumer import IdempotentConsumer
from outbox_relay.config import ServiceConfig
from outbox_relay.confirmations import ConfirmationIngester
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.store.ddl import apply_ddl
from tests.integration.kafka_tools import create_topics, producer, read_all
from tests.integration.outbox_rows import run_relay

pytestmark = pytest.mark.integration

ORDERS = 120
STOCK = {"sku-apple": 400, "sku-plum": 60}  # plum runs out: some orders are answered FAILED


def _inventory_pass(engine: Engine, events: str, results: str) -> dict[str, object]:
    """One inventory service instance reading the whole topic under a fresh group (a full redelivery)."""
    consumer = group_consumer(f"inventory-{uuid.uuid4().hex[:8]}", events)
    try:
        service = IdempotentConsumer(
            "inventory", engine, consumer, KafkaPublisher(producer(), 10), results, reserve_stock
        )
        return service.run(time_budget_seconds=90, idle_seconds=3).as_dict()
    finally:
        consumer.close()


def test_every_order_is_applied_once_and_failed_ones_are_cancelled_with_the_reason(
    db_engine: Engine, topic_name: Callable[[str], str]
) -> None:
    events, results = topic_name("orders"), topic_name("results")
    create_topics(events, results)
    apply_ddl(db_engine, EXAMPLES_SQL_DIR / "order_inventory.sql")
    with db_engine.begin() as conn:
        for sku, stock in STOCK.items():
            conn.execute(text("INSERT INTO inventory (sku, stock) VALUES (:s, :n)"), {"s": sku, "n": stock})
    placed = place_orders(db_engine, ORDERS, list(STOCK))
    with db_engine.begin() as conn:  # this test's own topic instead of the demo's orders.events
        conn.execute(text("UPDATE outbox_message SET topic = :t"), {"t": events})
    config = ServiceConfig.model_validate(
        {"service": "orders", "topic": events, "batch_size": 50, "confirmation": {"topic": results}}
    )

    assert run_relay(config, db_engine).published == ORDERS
    first, second = _inventory_pass(db_engine, events, results), _inventory_pass(db_engine, events, results)
    consumer = group_consumer(f"relay-{uuid.uuid4().hex[:8]}", results, **{"enable.partition.eof": True})
    try:
        ingested = ConfirmationIngester(config, db_engine, consumer).run(90, idle_seconds=3)
    finally:
        consumer.close()
    with db_engine.begin() as conn:
        cancelled = cancel_failed_orders(conn)
    with db_engine.begin() as conn:
        cancelled_again = cancel_failed_orders(conn)

    assert first["processed"] + first["failed"] == ORDERS and second["duplicates"] == ORDERS
    assert ingested.messages == 2 * ORDERS  # every delivery was answered, the duplicates from the inbox
    with db_engine.connect() as conn:
        outbox = dict(conn.execute(text("SELECT status, COUNT(*) FROM outbox_message GROUP BY status")).all())
        movements = dict(
            conn.execute(text("SELECT order_id, COUNT(*) FROM stock_movement GROUP BY order_id")).all()
        )
        reasons = conn.execute(text("SELECT reason FROM orders WHERE status = 'CANCELLED'")).scalars().all()
        negative = conn.execute(text("SELECT COUNT(*) FROM inventory WHERE stock < 0")).scalar_one()
    assert set(outbox) <= {"CONFIRMED", "FAILED"} and sum(outbox.values()) == ORDERS  # nothing lost
    assert outbox.get("FAILED", 0) > 0 and outbox["CONFIRMED"] == len(movements)
    assert set(movements.values()) == {1} and negative == 0  # one effect per order, delivered twice
    assert cancelled == outbox["FAILED"] == len(reasons) and cancelled_again == 0
    assert all(r and "insufficient stock for sku-plum" in r for r in reasons)

    records = read_all(events)
    assert sorted(r.headers["outbox-message-id"] for r in records) == sorted(
        set(r.headers["outbox-message-id"] for r in records)
    )
    order_ids = [o.order_id for o in placed]
    positions = [order_ids.index(r.key) for r in records]  # per partition, in placement order
    for partition in {r.partition for r in records}:
        mine = [p for p, r in zip(positions, records, strict=True) if r.partition == partition]
        assert mine == sorted(mine), partition
