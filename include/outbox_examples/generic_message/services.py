"""The business services of the generic-message scenario.

Producers: ``billing`` (invoices) and ``shipping`` (shipments) share one database and one
message table, ``message_send``, each row tagged with its subsystem in ``service_name``.
Consumer: ``ledger`` records every message it handles in ``message_consume`` in the same
transaction as its business change (``ledger_entry``); the unique key (service_name,
message_id) makes a redelivered message a no-op.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from outbox_inbox.consumer import InboundMessage, to_inbound
from outbox_relay.database import is_duplicate_on, truncate_error
from outbox_relay.kafka.consume import ConsumeLoop, commit_offsets
from outbox_relay.models import StatsMixin

log = logging.getLogger(__name__)

BILLING_TOPIC = "billing.invoices"
SHIPPING_TOPIC = "shipping.shipments"
LEDGER = "ledger"
PENDING, CONSUMED, FAILED = 0, 1, 2


class RejectedEntryError(Exception):
    """The ledger refuses a message (recorded as status 2 with this text, never swallowed)."""


# --- producer side -----------------------------------------------------------------------


def send_message(
    conn: Connection,
    service_name: str,
    topic: str,
    business_id: str,
    body: dict[str, Any],
    retry: bool = True,
    partition: int | None = None,
) -> str:
    """Write a message row in the caller's transaction (the business change commits with it)."""
    message_id = str(uuid.uuid4())
    conn.execute(
        text(
            "INSERT INTO message_send (message_id, business_id, service_name, topic, kafka_partition, body, "
            "retry_flag) VALUES (:m, :b, :s, :t, :p, :body, :r)"
        ),
        {
            "m": message_id,
            "b": business_id,
            "s": service_name,
            "t": topic,
            "p": partition,
            "body": json.dumps(body),
            "r": 1 if retry else 0,
        },
    )
    return message_id


def create_invoice(conn: Connection, amount_cents: int, topic: str = BILLING_TOPIC, **message: Any) -> str:
    """billing: an invoice and its 'created' event (seq 1), one transaction."""
    invoice_id = str(uuid.uuid4())
    conn.execute(
        text("INSERT INTO invoice (invoice_id, amount_cents) VALUES (:i, :a)"),
        {"i": invoice_id, "a": amount_cents},
    )
    body = {"kind": "invoice_created", "seq": 1, "amount_cents": amount_cents}
    send_message(conn, "billing", topic, invoice_id, body, **message)
    return invoice_id


def adjust_invoice(conn: Connection, invoice_id: str, delta_cents: int, topic: str = BILLING_TOPIC) -> None:
    """billing: a later change to the same invoice (seq 2): must reach the ledger after seq 1."""
    conn.execute(
        text("UPDATE invoice SET amount_cents = amount_cents + :d WHERE invoice_id = :i"),
        {"d": delta_cents, "i": invoice_id},
    )
    body = {"kind": "invoice_adjusted", "seq": 2, "amount_cents": delta_cents}
    send_message(conn, "billing", topic, invoice_id, body)


def create_shipment(conn: Connection, invoice_id: str, topic: str = SHIPPING_TOPIC) -> str:
    """shipping: a shipment and its event, in the same shared message table."""
    shipment_id = str(uuid.uuid4())
    conn.execute(
        text("INSERT INTO shipment (shipment_id, invoice_id) VALUES (:s, :i)"),
        {"s": shipment_id, "i": invoice_id},
    )
    body = {"kind": "shipped", "seq": 1, "amount_cents": 0, "invoice_id": invoice_id}
    send_message(conn, "shipping", topic, shipment_id, body)
    return shipment_id


def write_business(
    engine: Engine,
    invoices: int,
    rejected_every: int = 0,
    topics: tuple[str, str] = (BILLING_TOPIC, SHIPPING_TOPIC),
) -> list[str]:
    """Each invoice: created (+ shipped) then adjusted, each step its own transaction.
    Every ``rejected_every``-th invoice has a negative amount, which the ledger refuses."""
    ids = []
    for n in range(invoices):
        amount = -500 if rejected_every and n % rejected_every == rejected_every - 1 else 1000 + n
        with engine.begin() as conn:
            invoice_id = create_invoice(conn, amount, topics[0])
            create_shipment(conn, invoice_id, topics[1])
        with engine.begin() as conn:
            adjust_invoice(conn, invoice_id, 100, topics[0])
        ids.append(invoice_id)
    return ids


# --- consumer side -----------------------------------------------------------------------


def ledger_handler(conn: Connection, message: InboundMessage) -> None:
    """The ledger's business change; runs inside the consumer-table transaction."""
    event = message.json()
    if event["amount_cents"] < 0:
        raise RejectedEntryError(f"negative amount {event['amount_cents']} for {message.key}")
    conn.execute(
        text(
            "INSERT INTO ledger_entry (message_id, business_id, seq, kind, amount_cents) "
            "VALUES (:m, :b, :s, :k, :a)"
        ),
        {
            "m": message.message_id,
            "b": message.key,
            "s": event["seq"],
            "k": event["kind"],
            "a": event["amount_cents"],
        },
    )


Handler = Callable[[Connection, InboundMessage], None]


@dataclass
class ConsumeStats(StatsMixin):
    received: int = 0
    consumed: int = 0
    failed: int = 0
    duplicates: int = 0
    dropped: int = 0
    malformed: int = 0


class ConsumerTableConsumer:
    """Consumes relayed messages once per message id, recording each in the consumer table."""

    def __init__(
        self, service_name: str, engine: Engine, handler: Handler, table: str = "message_consume"
    ) -> None:
        self.service_name = service_name
        self.engine = engine
        self.handler = handler
        self.table = table

    def handle(self, message: InboundMessage) -> str:
        """One transaction: insert the record (status 0), run the handler, set 1 or 2 (+ error)."""
        with self.engine.connect() as conn, conn.begin():
            try:
                conn.execute(
                    text(
                        f"INSERT INTO {self.table} (message_id, business_id, topic, kafka_partition, "
                        "kafka_offset, body, status, service_name) VALUES (:m, :b, :t, :p, :o, :body, :s, :svc)"
                    ),
                    {
                        "m": message.message_id,
                        "b": message.key,
                        "t": message.topic,
                        "p": message.partition,
                        "o": message.offset,
                        "body": message.value.decode("utf-8", "replace"),
                        "s": PENDING,
                        "svc": self.service_name,
                    },
                )
            except IntegrityError as exc:
                if not is_duplicate_on(exc, "uq_message_consume_service_message"):
                    raise
                return "duplicate"
            status, error = self._run_handler(conn, message)
            conn.execute(
                text(
                    f"UPDATE {self.table} SET status = :s, error_text = :e "
                    "WHERE service_name = :svc AND message_id = :m"
                ),
                {"s": status, "e": error, "svc": self.service_name, "m": message.message_id},
            )
        return "consumed" if status == CONSUMED else "failed"

    def _run_handler(self, conn: Connection, message: InboundMessage) -> tuple[int, str | None]:
        savepoint = conn.begin_nested()
        try:
            self.handler(conn, message)
        except Exception as exc:  # recorded as status 2 with its text; the business change is rolled back
            savepoint.rollback()
            error = truncate_error(f"{type(exc).__name__}: {exc}")
            log.warning("%s: message %s failed: %s", self.service_name, message.message_id, error)
            return FAILED, error
        savepoint.commit()
        return CONSUMED, None

    def run(
        self,
        consumer: Any,
        time_budget_seconds: float = 120,
        idle_seconds: float = 3,
        drop: Callable[[InboundMessage], bool] | None = None,
    ) -> ConsumeStats:
        """Consume until idle. ``drop`` simulates a consumer that loses messages (commits the offset
        without recording them): what reconciliation exists to catch."""
        stats = ConsumeStats()
        loop = ConsumeLoop(
            consumer, time_budget_seconds, idle_seconds, stop_at_end=False, name=self.service_name
        )
        for batch in loop:
            for raw in batch:
                self._one(raw, stats, drop)
            commit_offsets(consumer)  # only after the records are committed
        return stats

    def _one(self, raw: Any, stats: ConsumeStats, drop: Callable[[InboundMessage], bool] | None) -> None:
        stats.received += 1
        message = to_inbound(raw)
        if message is None:
            stats.malformed += 1
            return
        if drop is not None and drop(message):
            stats.dropped += 1
            return
        counter = {"consumed": "consumed", "failed": "failed", "duplicate": "duplicates"}[
            self.handle(message)
        ]
        setattr(stats, counter, getattr(stats, counter) + 1)
