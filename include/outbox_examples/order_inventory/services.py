"""The two business services of the demo: orders (producer side) and inventory (consumer side)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text

from outbox_inbox.consumer import InboundMessage
from outbox_relay.writer import OutboxMessage, write_outbox

ORDER_TOPIC = "orders.events"


class InsufficientStockError(Exception):
    """Inventory cannot reserve the quantity; reported FAILED on the result topic."""


@dataclass(frozen=True)
class PlacedOrder:
    order_id: str
    sku: str
    quantity: int


def place_order(conn: Connection, sku: str, quantity: int) -> PlacedOrder:
    """The order service's write: business row and outbox row in the caller's ONE transaction."""
    order = PlacedOrder(str(uuid.uuid4()), sku, quantity)
    conn.execute(
        text("INSERT INTO orders (order_id, sku, quantity) VALUES (:o, :s, :q)"),
        {"o": order.order_id, "s": sku, "q": quantity},
    )
    write_outbox(
        conn,
        OutboxMessage(
            topic=ORDER_TOPIC,
            key=order.order_id,
            event_type="OrderPlaced",
            payload={"order_id": order.order_id, "sku": sku, "quantity": quantity},
        ),
    )
    return order


def place_orders(engine: Engine, count: int, skus: list[str], seed: int = 7) -> list[PlacedOrder]:
    rng = random.Random(seed)
    orders = []
    for _ in range(count):
        with engine.begin() as conn:
            orders.append(place_order(conn, rng.choice(skus), rng.randint(1, 5)))
    return orders


def reserve_stock(conn: Connection, message: InboundMessage) -> None:
    """Inventory's handler: runs inside the inbox transaction, so it happens once per message id."""
    event = message.json()
    row = conn.execute(
        text("SELECT stock FROM inventory WHERE sku = :s FOR UPDATE"), {"s": event["sku"]}
    ).one_or_none()
    if row is None:
        raise InsufficientStockError(f"unknown sku {event['sku']!r}")
    if row[0] < event["quantity"]:
        raise InsufficientStockError(f"insufficient stock for {event['sku']}: {row[0]} < {event['quantity']}")
    conn.execute(
        text("UPDATE inventory SET stock = stock - :q WHERE sku = :s"),
        {"q": event["quantity"], "s": event["sku"]},
    )
    conn.execute(
        text("INSERT INTO stock_movement (order_id, sku, quantity) VALUES (:o, :s, :q)"),
        {"o": event["order_id"], "s": event["sku"], "q": event["quantity"]},
    )


def cancel_failed_orders(conn: Connection) -> int:
    """Order service's compensation: an order whose event ended FAILED is CANCELLED with the reason.

    Idempotent: only PLACED orders change, so running it again does nothing.
    """
    result = conn.execute(
        text(
            "UPDATE orders o JOIN outbox_message m ON m.aggregate_id = o.order_id "
            "SET o.status = 'CANCELLED', o.reason = m.last_error "
            "WHERE m.status = 'FAILED' AND m.event_type = 'OrderPlaced' AND o.status = 'PLACED'"
        )
    )
    return int(result.rowcount)
