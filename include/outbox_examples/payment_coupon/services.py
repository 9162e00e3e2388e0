"""The two business services: user payments (t_user + t_user_coupon_tran) and activity (t_coupon).

The activity service's idempotency record is the original's own: ``t_coupon.tid`` is unique, so a
redelivered transaction hits ``t_coupon_tid_unique_key``; exactly that (MySQL error 1062 on that key)
means "already granted" and is answered SUCCESS. Every other error is a real one: it rolls the
message's changes back, is logged and answered FAILED with its text, never swallowed.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, text

from outbox_inbox.consumer import ConsumeStats, Handler, IdempotentConsumer, InboundMessage
from outbox_relay.database import insert_once
from outbox_relay.kafka.publisher import KafkaPublisher

log = logging.getLogger(__name__)

COUPON_TOPIC = "coupon"
RESULT_TOPIC = "coupon.results"
TID_UNIQUE_KEY = "t_coupon_tid_unique_key"
NOT_SENT = 0  # ToCouponStatus.USER_COUPON_NO_SEND


class PaymentRejectedError(ValueError):
    """A payment that must not happen; the transaction is rolled back, so no outbox row exists."""


class UnknownUserError(PaymentRejectedError):
    pass


class InsufficientBalanceError(PaymentRejectedError):
    pass


# --- user service -------------------------------------------------------------------------------


def create_user(conn: Connection, name: str, money: int) -> int:
    return int(
        conn.execute(
            text("INSERT INTO t_user (uname, money) VALUES (:n, :m)"), {"n": name, "m": money}
        ).lastrowid
    )


def pay(conn: Connection, uid: int, money: int) -> int:
    """Deduct ``money`` and write the cash-back row, in the caller's ONE transaction; returns the tid.

    The deduction is a conditional UPDATE (``money >= :amount``): the check and the write are one
    statement on the locked row, so concurrent payments cannot both pass a stale check and overdraw.
    """
    if money <= 0:
        raise PaymentRejectedError(f"payment amount must be positive, got {money}")
    deducted = conn.execute(
        text("UPDATE t_user SET money = money - :m WHERE uid = :u AND money >= :m"), {"m": money, "u": uid}
    ).rowcount
    if deducted != 1:
        balance = conn.execute(
            text("SELECT money FROM t_user WHERE uid = :u"), {"u": uid}
        ).scalar_one_or_none()
        if balance is None:
            raise UnknownUserError(f"payment rejected: user {uid} does not exist")
        raise InsufficientBalanceError(
            f"payment rejected: user {uid} has balance {balance}, cannot pay {money}"
        )
    return int(
        conn.execute(
            text("INSERT INTO t_user_coupon_tran (uid, coupon_money, status) VALUES (:u, :m, :s)"),
            {"u": uid, "m": money, "s": NOT_SENT},
        ).lastrowid
    )


@dataclass
class PaymentRun:
    paid: list[int]
    rejected: list[str]


def run_payments(engine: Engine, users: list[int], count: int, max_amount: int, seed: int = 11) -> PaymentRun:
    """``count`` payments by random users, one transaction each; rejected ones are reported, not fatal."""
    rng = random.Random(seed)
    run = PaymentRun([], [])
    for _ in range(count):
        try:
            with engine.begin() as conn:
                run.paid.append(pay(conn, rng.choice(users), rng.randint(1, max_amount)))
        except PaymentRejectedError as exc:
            run.rejected.append(str(exc))
    return run


# --- activity service ---------------------------------------------------------------------------


def parse_coupon_message(message: InboundMessage) -> tuple[int, int, int]:
    """(uid, coupon_money, tid) from the relayed JSON body; a missing field raises naming it."""
    body: Any = message.json()
    if not isinstance(body, dict):
        raise ValueError(f"message {message.message_id}: body is not a JSON object")
    missing = [f for f in ("uid", "coupon_money", "tid") if f not in body]
    if missing:
        raise ValueError(f"message {message.message_id}: body lacks {missing}")
    return body["uid"], body["coupon_money"], body["tid"]


def _check_same_grant(conn: Connection, uid: int, money: int, tid: int) -> None:
    """A redelivery carries the same uid and amount; a different one under the same tid is a conflict."""
    granted = conn.execute(text("SELECT uid, cmoney FROM t_coupon WHERE tid = :t"), {"t": tid}).one()
    if (granted.uid, granted.cmoney) != (uid, money):
        raise ValueError(
            f"tid {tid} was already granted to uid {granted.uid} with {granted.cmoney}; "
            f"this message says uid {uid} with {money}"
        )


class CouponListener(IdempotentConsumer):
    """The activity service: ``IdempotentConsumer``'s loop, answers and commit discipline, but deduped
    by the business table's unique key (``t_coupon.tid``) instead of an inbox table."""

    def __init__(
        self, engine: Engine, consumer: Any, results: KafkaPublisher, result_topic: str = RESULT_TOPIC
    ) -> None:
        super().__init__("activity", engine, consumer, results, result_topic, self._grant_handler())
        self._already_granted = False

    def _grant_handler(self) -> Handler:
        def grant(conn: Connection, message: InboundMessage) -> None:
            uid, money, tid = parse_coupon_message(message)
            granted = insert_once(
                conn,
                "INSERT INTO t_coupon (cmoney, uid, tid) VALUES (:m, :u, :t)",
                {"m": money, "u": uid, "t": tid},
                TID_UNIQUE_KEY,  # any other error (NOT NULL, another key, ...) is raised: answered FAILED
            )
            if not granted:
                _check_same_grant(conn, uid, money, tid)
                log.info("activity: coupon for tid=%s already granted; redelivery acknowledged", tid)
                self._already_granted = True

        return grant

    def _process_one(self, message: InboundMessage, stats: ConsumeStats) -> tuple[str, str | None]:
        self._already_granted = False
        with self.engine.connect() as conn, conn.begin():
            status, error = self._run_handler(conn, message, stats)
        if self._already_granted:
            stats.processed -= 1
            stats.duplicates += 1
        return status, error
