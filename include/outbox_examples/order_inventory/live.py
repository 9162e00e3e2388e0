"""`make airflow`'s live traffic: the order service places an order every ``--every`` seconds (order row +
outbox row in one transaction) while the inventory service consumes and answers, until stopped.

Usage: python -m outbox_examples.order_inventory.live [--every 2] [--setup]
"""

from __future__ import annotations

import argparse
import random
import signal
import threading

from sqlalchemy import Engine

from outbox_examples.demo_support import db_url
from outbox_examples.order_inventory.demo import SKUS, inventory_service, setup
from outbox_examples.order_inventory.services import place_order
from outbox_relay.database import make_engine


def trickle(engine: Engine, every: float, stop: threading.Event) -> None:
    pick = random.Random(11)
    while not stop.wait(every):
        with engine.begin() as conn:
            place_order(conn, pick.choice(list(SKUS)), pick.randint(1, 3))


def _stop_now(*_: object) -> None:
    """SIGTERM (`make airflow-stop`) ends the process at once, in the middle of a consumer round if need be:
    its open transaction rolls back and its uncommitted offsets are read again next time, which the
    inventory's inbox dedupes."""
    raise SystemExit(0)


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m outbox_examples.order_inventory.live")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between two orders")
    parser.add_argument("--setup", action="store_true", help="create the database first")
    args = parser.parse_args()
    if args.setup:
        setup()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, _stop_now)
    engine = make_engine(db_url())
    orders = threading.Thread(target=trickle, args=(engine, args.every, stop), daemon=True)
    orders.start()
    while not stop.is_set():  # the inventory service, in rounds (each ends after a quiet spell)
        inventory_service(time_budget_seconds=60, idle_seconds=30, live=True)
    engine.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
