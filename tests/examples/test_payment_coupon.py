"""Scenario payment_coupon end to end: t_user_coupon_tran (legacy, unchanged) -> relay -> real broker ->
activity service -> t_coupon, every message delivered twice."""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import IntegrityError

from outbox_examples.kafka_groups import group_consumer
from outbox_examples.payment_coupon.services import (
    TID_UNIQUE_KEY,
    CouponListener,
    InsufficientBalanceError,
    PaymentRejectedError,
    UnknownUserError,
    create_user,
    pay,
)
from outbox_inbox.consumer import ConsumeStats
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.store.mysql_errors import is_duplicate_on
from tests.examples.coupon_support import example_config, relay_twice, with_example_tables
from tests.examples.demo_runner import run_demo
from tests.integration.kafka_tools import create_topics, producer, read_all

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    with_example_tables(db_engine, "payment_coupon")
    return db_engine


def _listen(engine: Engine, topic: str, results: str) -> ConsumeStats:
    consumer = group_consumer(f"activity-{uuid.uuid4().hex[:8]}", topic)
    publisher = KafkaPublisher(producer(), 30)
    try:
        return CouponListener(engine, consumer, publisher, results).run(
            time_budget_seconds=60, idle_seconds=3
        )
    finally:
        consumer.close()


def _answers(results: str) -> dict[str, list[dict[str, str]]]:
    answers: dict[str, list[dict[str, str]]] = defaultdict(list)
    for record in read_all(results):
        body = json.loads(record.value)
        answers[body["message_id"]].append(body)
    return answers


def test_every_payment_twice_grants_one_coupon_per_tid_in_per_user_order(
    engine: Engine, topic_name: Callable[[str], str]
) -> None:
    topic, results = topic_name("coupon"), topic_name("coupon.results")
    create_topics(topic, results)
    config = example_config("payment_coupon", "payments", topic)
    with engine.begin() as conn:
        users = [create_user(conn, f"u{i}", 1000) for i in range(3)]
    tids = []
    for n in range(30):
        with engine.begin() as conn:
            tids.append(pay(conn, users[n % 3], n + 1))

    records = relay_twice(config, engine)
    assert len(records) == 60
    per_key: dict[str, list[int]] = defaultdict(list)
    for record in records:
        per_key[str(record.key)].append(json.loads(record.value)["tid"])
    for i, uid in enumerate(users):
        assert per_key[str(uid)] == tids[i::3] * 2  # per-key order kept in both passes

    stats = _listen(engine, topic, results)

    assert (stats.received, stats.processed, stats.duplicates, stats.failed) == (60, 30, 30, 0)
    with engine.connect() as conn:
        coupons = conn.execute(text("SELECT cid, uid, tid, cmoney FROM t_coupon ORDER BY cid")).all()
        paid = dict(conn.execute(text("SELECT tid, coupon_money FROM t_user_coupon_tran")).all())
        balances = conn.execute(text("SELECT SUM(money) FROM t_user")).scalar_one()
    assert {c.tid: c.cmoney for c in coupons} == paid  # nothing lost, exactly one coupon per payment
    for i, uid in enumerate(users):
        assert [c.tid for c in coupons if c.uid == uid] == tids[i::3]  # granted in payment order per user
    assert balances + sum(paid.values()) == 3000
    answers = _answers(results)
    assert len(answers) == 30 and all(
        [a["status"] for a in v] == ["SUCCESS", "SUCCESS"] for v in answers.values()
    )


def test_only_a_duplicate_tid_counts_as_done_every_other_error_is_answered_failed(
    engine: Engine, topic_name: Callable[[str], str]
) -> None:
    topic, results = topic_name("coupon"), topic_name("coupon.results")
    create_topics(topic, results)
    bodies = {
        "m-null-uid": {"uid": None, "coupon_money": 5, "tid": 900},
        "m-no-tid": {"uid": 1, "coupon_money": 5},
        "m-ok": {"uid": 1, "coupon_money": 5, "tid": 902},
        "m-same-tid-again": {"uid": 1, "coupon_money": 5, "tid": 902},
        "m-same-tid-other-user": {"uid": 2, "coupon_money": 5, "tid": 902},
    }
    p = producer()
    for mid, body in bodies.items():
        p.produce(
            topic, key=b"1", value=json.dumps(body).encode(), headers=[("outbox-message-id", mid.encode())]
        )
    assert p.flush(10) == 0

    stats = _listen(engine, topic, results)

    assert (stats.processed, stats.duplicates, stats.failed) == (1, 1, 3)
    answers = {mid: v[-1] for mid, v in _answers(results).items()}
    assert answers["m-ok"]["status"] == answers["m-same-tid-again"]["status"] == "SUCCESS"
    assert answers["m-null-uid"]["status"] == "FAILED" and "1048" in answers["m-null-uid"]["error"]
    assert answers["m-no-tid"]["status"] == "FAILED" and "lacks ['tid']" in answers["m-no-tid"]["error"]
    assert answers["m-same-tid-other-user"]["status"] == "FAILED"
    assert "tid 902 was already granted to uid 1" in answers["m-same-tid-other-user"]["error"]
    with engine.connect() as conn:
        assert conn.execute(text("SELECT tid FROM t_coupon")).scalars().all() == [902]
        cid = conn.execute(text("SELECT cid FROM t_coupon")).scalar_one()
    with pytest.raises(IntegrityError) as other_key, engine.begin() as conn:  # 1062, but on PRIMARY
        conn.execute(text("INSERT INTO t_coupon (cid, cmoney, uid, tid) VALUES (:c, 1, 1, 903)"), {"c": cid})
    assert other_key.value.orig.args[0] == 1062 and not is_duplicate_on(other_key.value, TID_UNIQUE_KEY)
    with pytest.raises(IntegrityError) as same_key, engine.begin() as conn:
        conn.execute(text("INSERT INTO t_coupon (cmoney, uid, tid) VALUES (1, 1, 902)"))
    assert is_duplicate_on(same_key.value, TID_UNIQUE_KEY)


def test_rejected_payments_leave_no_outbox_row_and_concurrent_payments_cannot_overdraw(
    engine: Engine,
) -> None:
    with engine.begin() as conn:
        uid = create_user(conn, "alili", 100)
    for bad, error in (
        (lambda c: pay(c, uid, 101), InsufficientBalanceError),
        (lambda c: pay(c, 999, 1), UnknownUserError),
    ):
        with pytest.raises(error, match="payment rejected: user"), engine.begin() as conn:
            bad(conn)

    def attempt(_: int) -> str:
        try:
            with engine.begin() as conn:
                pay(conn, uid, 10)
            return "paid"
        except PaymentRejectedError:
            return "rejected"

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(attempt, range(20)))
    assert outcomes.count("paid") == 10 and outcomes.count("rejected") == 10
    with engine.connect() as conn:
        assert conn.execute(text("SELECT money FROM t_user WHERE uid = :u"), {"u": uid}).scalar_one() == 0
        assert conn.execute(text("SELECT COUNT(*), SUM(coupon_money) FROM t_user_coupon_tran")).one() == (
            10,
            100,
        )


@pytest.mark.airflow
@pytest.mark.slow
def test_demo_script_prints_no_loss_and_no_duplicate_coupons() -> None:
    figures = run_demo("payment_coupon", DEMO_PAYMENTS="120").figures
    paid, rejected = int(figures["payments accepted"]), int(figures["payments rejected (no outbox row)"])
    assert paid + rejected == 120 and paid > 0 and rejected > 0
    assert figures["outbox rows written"] == str(paid)
    assert figures["published (distinct ids on topic)"] == str(paid)
    assert figures["messages on topic (every payment twice)"] == str(2 * paid)
    assert figures["coupons granted"] == str(paid)
    assert figures["redeliveries answered SUCCESS (unique tid)"] == str(paid)
    assert figures["lost (must be 0)"] == "0"
    assert figures["duplicate business effects (must be 0)"] == "0"
    assert figures["per-user order violations (must be 0)"] == "0"
    assert figures["money conserved"] == "yes"
