"""Steps of ``make demo SCENARIO=payment_coupon`` that are not Airflow runs.

Usage: python -m outbox_examples.payment_coupon.demo setup N|pay N|redeliver|activity|report
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from sqlalchemy import create_engine, text

from outbox_examples import EXAMPLES_SQL_DIR
from outbox_examples.demo_state import DemoState
from outbox_examples.demo_support import bootstrap, db_url, print_summary, read_back, server_url
from outbox_examples.kafka_groups import group_consumer, skip_to_end
from outbox_examples.payment_coupon.services import (
    COUPON_TOPIC,
    RESULT_TOPIC,
    CouponListener,
    create_user,
    run_payments,
)
from outbox_relay.database import apply_ddl, make_engine, recreate_database
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.kafka.topics import ensure_topics

GROUP = "activity-service"
USERS = 20
UNKNOWN_USER = 999_999  # payments for it must be rejected
STATE = DemoState("payment_coupon")


def setup(payments: int) -> None:
    """Users whose balances cover about 80% of the planned payments: the later ones are rejected."""
    engine = create_engine(recreate_database(server_url(), os.environ["DEMO_DB"]))
    apply_ddl(engine)  # the project DDL: outbox_relay_attempt keeps the legacy table's retry state
    apply_ddl(engine, EXAMPLES_SQL_DIR / "payment_coupon.sql")
    balance = max(100, payments * 25 // USERS)
    with engine.begin() as conn:
        users = [create_user(conn, f"user-{i}", balance) for i in range(USERS)]
        # Message ids are derived from tid ('payments:t_user_coupon_tran:<tid>'). A real table never
        # restarts its AUTO_INCREMENT; this recreated one would, and repeat earlier runs' ids on the
        # topic, so each run starts its tids where no earlier run reached (a table option, not a change).
        conn.execute(text(f"ALTER TABLE t_user_coupon_tran AUTO_INCREMENT = {int(time.time()) * 1000}"))
    engine.dispose()
    ensure_topics(AdminClient({"bootstrap.servers": bootstrap()}), {RESULT_TOPIC: 1}, replication_factor=1)
    skip_to_end(COUPON_TOPIC, GROUP)
    STATE.start(users=users, total_money=balance * USERS)


def pay(count: int) -> None:
    engine = make_engine(db_url())
    run = run_payments(engine, [*STATE.read()["users"], UNKNOWN_USER], count, max_amount=60)
    engine.dispose()
    STATE.update(rejected=len(run.rejected))
    unknown = [r for r in run.rejected if "does not exist" in r]
    short = [r for r in run.rejected if "does not exist" not in r]
    print(
        f"user service: {len(run.paid)} payments (deduction + t_user_coupon_tran row in one transaction); "
        f"rejected with no outbox row: {len(short)} over the balance, {len(unknown)} for an unknown user"
    )
    for example in short[:1] + unknown[:1]:
        print(f"  e.g. {example}")


def redeliver() -> None:
    """What a relay crash after the broker's ack but before marking status 1 leaves behind."""
    engine = make_engine(db_url())
    with engine.begin() as conn:
        reset = conn.execute(text("UPDATE t_user_coupon_tran SET status = 0 WHERE status = 1")).rowcount
    engine.dispose()
    print(f"set {reset} sent rows (status 1) back to 0: the next relay run publishes each a second time")


def activity() -> None:
    engine = make_engine(db_url())
    consumer = group_consumer(GROUP, COUPON_TOPIC)
    results = KafkaPublisher(
        Producer({"bootstrap.servers": bootstrap(), "enable.idempotence": True, "acks": "all"}), 30
    )
    stats = CouponListener(engine, consumer, results).run(time_budget_seconds=180, idle_seconds=3)
    consumer.close()
    engine.dispose()
    STATE.update(already_granted=stats.duplicates, answered_failed=stats.failed)
    print(f"activity service: {json.dumps({k: v for k, v in stats.as_dict().items() if k != 'errors'})}")


def report() -> int:
    state = STATE.read()
    engine = make_engine(db_url())
    with engine.connect() as conn:

        def one(sql: str) -> int:
            return int(conn.execute(text(sql)).scalar_one())

        tids = {int(r[0]) for r in conn.execute(text("SELECT tid FROM t_user_coupon_tran"))}
        still_new = one("SELECT COUNT(*) FROM t_user_coupon_tran WHERE status = 0")
        granted = {int(r[0]) for r in conn.execute(text("SELECT tid FROM t_coupon"))}
        coupons = one("SELECT COUNT(*) FROM t_coupon")
        dup_effects = one(
            "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) n FROM t_coupon GROUP BY tid) x"
        )
        order_violations = one(
            "SELECT COUNT(*) FROM t_coupon a JOIN t_coupon b ON a.uid = b.uid AND a.cid < b.cid AND a.tid > b.tid"
        )
        money = one(
            "SELECT (SELECT SUM(money) FROM t_user) + (SELECT COALESCE(SUM(coupon_money), 0) "
            "FROM t_user_coupon_tran)"
        )
        wrong_amounts = one(
            "SELECT COUNT(*) FROM t_coupon c JOIN t_user_coupon_tran t ON t.tid = c.tid "
            "WHERE c.cmoney <> t.coupon_money OR c.uid <> t.uid"
        )
    engine.dispose()
    landed = read_back(COUPON_TOPIC, {f"payments:t_user_coupon_tran:{t}" for t in tids})
    lost = len(tids - granted)
    table = [
        ("payments accepted", len(tids)),
        ("payments rejected (no outbox row)", state["rejected"]),
        ("outbox rows written", len(tids)),
        ("published (distinct ids on topic)", len(landed.ids)),
        ("messages on topic (every payment twice)", landed.total),
        ("still status 0 (not sent)", still_new),
        ("coupons granted", coupons),
        ("redeliveries answered SUCCESS (unique tid)", state["already_granted"]),
        ("answered FAILED", state["answered_failed"]),
        ("coupons with wrong amount or user", wrong_amounts),
        ("lost (must be 0)", lost),
        ("duplicate business effects (must be 0)", dup_effects),
        ("per-user order violations (must be 0)", order_violations),
        ("money conserved", "yes" if money == state["total_money"] else f"NO ({money})"),
        ("elapsed", STATE.elapsed()),
    ]
    print_summary("payment -> cash-back coupon (legacy table)", table)
    ok = lost == dup_effects == order_violations == wrong_amounts == 0 and money == state["total_money"]
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m outbox_examples.payment_coupon.demo")
    parser.add_argument("step", choices=["setup", "pay", "redeliver", "activity", "report"])
    parser.add_argument("count", nargs="?", type=int, default=2000)
    args = parser.parse_args()
    if args.step == "setup":
        setup(args.count)
    elif args.step == "pay":
        pay(args.count)
    elif args.step == "redeliver":
        redeliver()
    elif args.step == "activity":
        activity()
    else:
        return report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
