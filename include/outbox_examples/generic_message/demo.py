"""Steps of ``make demo SCENARIO=generic_message`` that are not Airflow runs.

Usage: python -m outbox_examples.generic_message.demo setup|write N|lose-marks N|all|consume [--drop N]|report
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from confluent_kafka import Consumer
from sqlalchemy import create_engine, text

from outbox_examples import EXAMPLES_SQL_DIR
from outbox_examples.demo_support import bootstrap, db_url, print_summary, read_back, server_url
from outbox_examples.generic_message.services import (
    BILLING_TOPIC,
    LEDGER,
    SHIPPING_TOPIC,
    ConsumerTableConsumer,
    create_invoice,
    ledger_handler,
    write_business,
)
from outbox_inbox.consumer import InboundMessage
from outbox_relay.database import REDELIVERY_NOTE, apply_ddl, make_engine, recreate_database

STATE = Path(os.environ.get("DEMO_STATE", ".run/demo-state-generic_message.json"))
REJECTED_EVERY = 25  # every 25th invoice has a negative amount: the ledger records status 2 + error


def setup() -> None:
    engine = create_engine(recreate_database(server_url(), os.environ["DEMO_DB"]))
    apply_ddl(engine)
    apply_ddl(engine, EXAMPLES_SQL_DIR / "generic_message.sql")
    engine.dispose()
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.write_text(json.dumps({"started": time.time()}))


def write(count: int) -> None:
    engine = make_engine(db_url())
    write_business(engine, count, rejected_every=REJECTED_EVERY)
    with engine.begin() as conn:  # a poison row that may not retry: partition 99 does not exist
        create_invoice(conn, 999, retry=False, partition=99)
        for partition in (0, 1, 2):  # rows that pick their own partition
            create_invoice(conn, 1000 + partition, partition=partition)
    engine.dispose()
    print(
        f"billing + shipping: {count} invoices (created, shipped, adjusted: {3 * count} messages) + 4 rows "
        "with their own partition (one of them 99, retry flag 0), all in the shared table message_send"
    )


def lose_marks(count: str) -> None:
    """The original's failure case 3: the broker has the message, the 'mark sent' update is lost.
    ``all``: every sent row (the relay publishes them all again); N: N consumed billing rows."""
    engine = make_engine(db_url())
    with engine.begin() as conn:
        if count == "all":
            changed = conn.execute(
                text("UPDATE message_send SET status = 0, sent_at = NULL WHERE status = 1")
            )
        else:
            changed = conn.execute(
                text(
                    "UPDATE message_send SET status = 0 WHERE service_name = 'billing' AND status = 1 AND "
                    "message_id IN (SELECT message_id FROM message_consume WHERE status = 1) "
                    "ORDER BY id DESC LIMIT :n"
                ),
                {"n": int(count)},
            )
    engine.dispose()
    print(f"lost the 'mark sent' update of {changed.rowcount} rows (status back to 0)")


def consume(drop: int) -> None:
    """The ledger consumes both topics; ``drop`` N billing messages are lost (offset committed, no
    record): the case the original's reconciliation exists for."""
    engine = make_engine(db_url())
    with engine.connect() as conn:
        lost = set(
            conn.execute(
                text(
                    "SELECT message_id FROM message_send WHERE service_name = 'billing' AND status = 1 "
                    "ORDER BY id LIMIT :n OFFSET 10"
                ),
                {"n": drop},
            ).scalars()
        )
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap(),
            "group.id": "ledger-demo",
            "isolation.level": "read_committed",  # never what a relay's aborted transaction left
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe([BILLING_TOPIC, SHIPPING_TOPIC])

    def drop_it(message: InboundMessage) -> bool:
        return message.message_id in lost

    ledger = ConsumerTableConsumer(LEDGER, engine, ledger_handler)
    stats = ledger.run(consumer, time_budget_seconds=180, idle_seconds=3, drop=drop_it)
    consumer.close()
    engine.dispose()
    print(f"ledger: {json.dumps(stats.as_dict())}")


def report() -> int:
    engine = make_engine(db_url())
    with engine.connect() as conn:
        sent_rows: dict[int, int] = dict(
            conn.execute(text("SELECT status, COUNT(*) FROM message_send GROUP BY status")).all()
        )
        all_ids = set(conn.execute(text("SELECT message_id FROM message_send")).scalars())
        given_up = set(conn.execute(text("SELECT message_id FROM message_send WHERE status = 2")).scalars())
        consumed: dict[int, int] = dict(
            conn.execute(text("SELECT status, COUNT(*) FROM message_consume GROUP BY status")).all()
        )
        recorded = set(conn.execute(text("SELECT message_id FROM message_consume")).scalars())
        redelivered = conn.execute(
            text("SELECT COUNT(*) FROM message_send WHERE last_error = :n"), {"n": REDELIVERY_NOTE}
        ).scalar_one()
        dup_effects = conn.execute(
            text(
                "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) n FROM ledger_entry GROUP BY message_id) x"
            )
        ).scalar_one()
    engine.dispose()
    billing, shipping = read_back(BILLING_TOPIC, all_ids), read_back(SHIPPING_TOPIC, all_ids)
    lost = len(all_ids - recorded - given_up)
    elapsed = time.time() - json.loads(STATE.read_text())["started"]
    table = [
        ("rows written", len(all_ids)),
        ("published (distinct ids on topic)", len(billing.ids | shipping.ids)),
        ("messages on topic for these rows", billing.total + shipping.total),
        ("consumed OK (consumer status 1)", consumed.get(1, 0)),
        ("consumer failed (status 2, with error)", consumed.get(2, 0)),
        ("producer FAILED (retry flag 0)", sent_rows.get(2, 0)),
        ("still unsent (status 0)", sent_rows.get(0, 0)),
        ("re-delivered by reconciliation", redelivered),
        ("lost (must be 0)", lost),
        ("duplicate business effects (must be 0)", int(dup_effects)),
        ("elapsed", f"{elapsed:.1f}s"),
    ]
    print_summary("generic message table + consumer table + reconciliation", table)
    return 0 if lost == 0 and dup_effects == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m outbox_examples.generic_message.demo")
    parser.add_argument("step", choices=["setup", "write", "lose-marks", "consume", "report"])
    parser.add_argument("count", nargs="?", default="300", help="write: invoices; lose-marks: N or 'all'")
    parser.add_argument("--drop", type=int, default=0, help="consume: lose this many billing messages")
    args = parser.parse_args()
    if args.step == "setup":
        setup()
    elif args.step == "write":
        write(int(args.count))
    elif args.step == "lose-marks":
        lose_marks(args.count)
    elif args.step == "consume":
        consume(args.drop)
    else:
        return report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
