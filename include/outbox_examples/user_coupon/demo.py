"""Steps of ``make demo SCENARIO=user_coupon`` that are not Airflow runs.

Usage: python -m outbox_examples.user_coupon.demo setup|register N|redeliver|crash|coupons|report
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys

from sqlalchemy import create_engine, text

from outbox_examples import EXAMPLES_SQL_DIR
from outbox_examples.demo_state import DemoState
from outbox_examples.demo_support import db_url, print_summary, read_back, server_url
from outbox_examples.kafka_groups import skip_to_end
from outbox_examples.user_coupon import coupon_service
from outbox_examples.user_coupon.services import USER_TOPIC, register_users
from outbox_relay.database import apply_ddl, make_engine, recreate_database

GROUP = "coupon-service"
STATE = DemoState("user_coupon")


def setup() -> None:
    engine = create_engine(recreate_database(server_url(), os.environ["DEMO_DB"]))
    apply_ddl(engine)  # the project DDL: outbox_relay_attempt keeps EventPublish's retry state
    apply_ddl(engine, EXAMPLES_SQL_DIR / "user_coupon.sql")
    engine.dispose()
    skip_to_end(USER_TOPIC, GROUP)
    STATE.start(killed=False, left_new=0)


def register(count: int) -> None:
    engine = make_engine(db_url())
    register_users(engine, count, deactivate_every=5)
    with engine.connect() as conn:
        events = conn.execute(text("SELECT COUNT(*) FROM EventPublish")).scalar_one()
    engine.dispose()
    print(
        f"user service: {count} users (user row + USER_CREATED in one transaction), every 5th then "
        f"deactivated (USER_DEACTIVATED); {events} EventPublish rows"
    )


def redeliver() -> None:
    """What a relay crash after the broker's ack but before marking PUBLISHED leaves behind."""
    engine = make_engine(db_url())
    with engine.begin() as conn:
        reset = conn.execute(
            text("UPDATE EventPublish SET status = 'NEW' WHERE status = 'PUBLISHED'")
        ).rowcount
    engine.dispose()
    print(f"set {reset} PUBLISHED events back to NEW: the next relay run publishes each a second time")


def crash() -> None:
    """Run the coupon service as a real process that SIGKILLs itself after recording its first batch."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "outbox_examples.user_coupon.coupon_service",
            "--group",
            GROUP,
            "--die-after-record",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    if done.returncode != -signal.SIGKILL:
        sys.exit(
            f"coupon service was expected to die by SIGKILL, exit code {done.returncode}:\n{done.stderr}"
        )
    engine = make_engine(db_url())
    with engine.connect() as conn:
        left_new = conn.execute(text("SELECT COUNT(*) FROM EventProcess WHERE status = 'NEW'")).scalar_one()
        coupons = conn.execute(text("SELECT COUNT(*) FROM coupon")).scalar_one()
    engine.dispose()
    STATE.update(killed=True, left_new=left_new)
    print(
        f"coupon service killed -9 after recording: {left_new} events NEW in EventProcess, {coupons} coupons"
    )


def report() -> int:
    engine = make_engine(db_url())
    with engine.connect() as conn:

        def one(sql: str) -> int:
            return int(conn.execute(text(sql)).scalar_one())

        users = one("SELECT COUNT(*) FROM app_user")
        deactivated = one("SELECT COUNT(*) FROM app_user WHERE status = 'DEACTIVATED'")
        event_ids = {str(r[0]) for r in conn.execute(text("SELECT id FROM EventPublish"))}
        still_new = one("SELECT COUNT(*) FROM EventPublish WHERE status = 'NEW'")
        processed = {
            str(r[0]) for r in conn.execute(text("SELECT id FROM EventProcess WHERE status = 'PROCESSED'"))
        }
        failed = one("SELECT COUNT(*) FROM EventProcess WHERE status = 'FAILED'")
        coupons = one("SELECT COUNT(*) FROM coupon")
        revoked = one("SELECT COUNT(*) FROM coupon WHERE status = 'REVOKED'")
        dup_effects = one(
            "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) n FROM coupon GROUP BY user_id) x"
        )
        order_violations = one(
            "SELECT COUNT(*) FROM app_user u LEFT JOIN coupon c ON c.user_id = u.user_id "
            "WHERE c.status IS NULL OR (u.status = 'DEACTIVATED') <> (c.status = 'REVOKED')"
        )
    engine.dispose()
    landed = read_back(USER_TOPIC, event_ids)
    lost = len(event_ids - processed)  # end to end: written by the user service, never processed
    state = STATE.read()
    table = [
        ("users registered", users),
        ("users deactivated", deactivated),
        ("events written", len(event_ids)),
        ("published (distinct ids on topic)", len(landed.ids)),
        ("messages on topic (every event twice)", landed.total),
        ("still NEW in EventPublish", still_new),
        ("coupon service killed -9 after recording", "yes" if state["killed"] else "no"),
        ("events it left NEW (processed after restart)", state["left_new"]),
        ("events processed", len(processed)),
        ("events failed", failed),
        ("coupons issued", coupons),
        ("coupons revoked", revoked),
        ("lost (must be 0)", lost),
        ("duplicate business effects (must be 0)", dup_effects),
        ("per-user order violations (must be 0)", order_violations),
        ("elapsed", STATE.elapsed()),
    ]
    print_summary("user registration -> welcome coupon", table)
    return 0 if lost == 0 and dup_effects == 0 and order_violations == 0 and failed == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m outbox_examples.user_coupon.demo")
    parser.add_argument("step", choices=["setup", "register", "redeliver", "crash", "coupons", "report"])
    parser.add_argument("count", nargs="?", type=int, default=1000)
    args = parser.parse_args()
    if args.step == "setup":
        setup()
    elif args.step == "register":
        register(args.count)
    elif args.step == "redeliver":
        redeliver()
    elif args.step == "crash":
        crash()
    elif args.step == "coupons":
        return coupon_service.main(["--group", GROUP])
    else:
        return report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
