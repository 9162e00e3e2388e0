"""Scenario user_coupon end to end: EventPublish -> relay -> real broker -> EventProcess -> coupon.

Every event is delivered twice (the relay publishes, the rows are set back to NEW as if it had died
before marking them, and it publishes again), and the coupon service is SIGKILLed between recording
and processing; the restarted service still issues exactly one coupon per user, in per-user order.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections import defaultdict
from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from outbox_examples.user_coupon.coupon_service import CouponServiceStats
from outbox_examples.user_coupon.services import (
    USER_CREATED,
    USER_DEACTIVATED,
    ProcessStats,
    ReceivedEvent,
    process_pending,
    record_event,
    register_users,
)
from outbox_relay.ids import Uuid7Generator
from tests.examples.coupon_support import (
    example_config,
    printed_stats,
    relay_twice,
    run_module,
    with_example_tables,
)
from tests.examples.demo_runner import run_demo
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import run_relay

pytestmark = pytest.mark.integration

SERVICE = "outbox_examples.user_coupon.coupon_service"


@pytest.fixture
def engine(db_engine: Engine) -> Engine:
    with_example_tables(db_engine, "user_coupon")
    return db_engine


def _count(engine: Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(sql)).scalar_one())


def test_every_event_twice_and_a_crash_still_give_one_coupon_per_user_in_order(
    engine: Engine, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("users")
    create_topics(topic)
    config = example_config("user_coupon", "users", topic)
    users = register_users(engine, 30, deactivate_every=3)
    deactivated = set(users[::3])
    with engine.connect() as conn:
        created_order = [
            r[0] for r in conn.execute(text("SELECT id FROM EventPublish ORDER BY createdAt, id"))
        ]
    assert len(created_order) == 40 and created_order == sorted(
        created_order
    )  # UUIDv7: id order = time order

    records = relay_twice(config, engine)
    assert len(records) == 80
    per_key: dict[str, list[str]] = defaultdict(list)
    for record in records:
        per_key[str(record.key)].append(record.headers["outbox-event-type"])
    for user_id in users:
        once = [USER_CREATED, USER_DEACTIVATED] if user_id in deactivated else [USER_CREATED]
        assert per_key[str(user_id)] == once * 2, user_id  # per-key order kept in both passes

    group = f"coupons-{uuid.uuid4().hex[:8]}"
    url = engine.url.render_as_string(hide_password=False)
    args = ["--topic", topic, "--group", group, "--db-url", url, "--idle", "3", "--budget", "60"]
    crashed = run_module(SERVICE, *args, "--die-after-record")
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr[-2000:]
    recorded_before_crash = _count(engine, "SELECT COUNT(*) FROM EventProcess WHERE status = 'NEW'")
    assert recorded_before_crash > 0
    assert _count(engine, "SELECT COUNT(*) FROM EventProcess") == recorded_before_crash
    assert _count(engine, "SELECT COUNT(*) FROM coupon") == 0  # received, not processed: the crash window

    restarted = run_module(SERVICE, *args)
    assert restarted.returncode == 0, restarted.stderr[-2000:]
    stats = printed_stats(restarted.stdout, "coupon service: ")
    assert set(stats) == set(CouponServiceStats().as_dict())
    assert stats["received"] == 80  # the crashed run committed no offsets: everything comes again
    assert stats["recorded"] == 40 - recorded_before_crash
    assert stats["duplicates"] == 40 + recorded_before_crash
    assert stats["processed"] == 40 and stats["failed"] == 0

    with engine.connect() as conn:
        published = {r[0] for r in conn.execute(text("SELECT id FROM EventPublish"))}
        processed = {
            r[0] for r in conn.execute(text("SELECT id FROM EventProcess WHERE status = 'PROCESSED'"))
        }
        coupons = dict(conn.execute(text("SELECT user_id, status FROM coupon")).all())
    assert published - processed == set()  # nothing lost
    assert sorted(coupons) == sorted(users)  # exactly one coupon per user (unique key)
    assert {
        u for u, s in coupons.items() if s == "REVOKED"
    } == deactivated  # deactivation applied after creation


def test_processor_dedupes_by_the_unique_key_and_fails_bad_events_with_their_error(engine: Engine) -> None:
    user_id = register_users(engine, 1, deactivate_every=0)[0]
    events = [
        ReceivedEvent(
            "00000000-0000-7000-8000-000000000001", USER_CREATED, "1", json.dumps({"user_id": user_id})
        ),
        ReceivedEvent(
            "00000000-0000-7000-8000-000000000002", USER_CREATED, "1", json.dumps({"user_id": user_id})
        ),
        ReceivedEvent(
            "00000000-0000-7000-8000-000000000003", USER_DEACTIVATED, "9", json.dumps({"user_id": 9})
        ),
        ReceivedEvent("00000000-0000-7000-8000-000000000004", USER_CREATED, "2", "not json"),
        ReceivedEvent(
            "00000000-0000-7000-8000-000000000005", "USER_RENAMED", "1", json.dumps({"user_id": 1})
        ),
    ]
    with engine.begin() as conn:
        assert [record_event(conn, e) for e in events] == [True] * 5
        assert record_event(conn, events[0]) is False  # redelivery: same event id
    stats = ProcessStats()
    process_pending(engine, stats)
    assert (stats.processed, stats.failed) == (2, 3)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM coupon")).scalar_one() == 1
        failed = dict(conn.execute(text("SELECT id, error FROM EventProcess WHERE status = 'FAILED'")).all())
    assert "EventOrderError" in failed[events[2].event_id]
    assert "JSONDecodeError" in failed[events[3].event_id]
    assert "unknown event type 'USER_RENAMED'" in failed[events[4].event_id]


def test_uuid7_ids_sort_in_creation_order_even_when_the_clock_steps_back() -> None:
    ticks = iter([1000] * 5000 + [999] * 10 + [2000] * 10)
    generator = Uuid7Generator(clock_ms=lambda: next(ticks))
    ids = [str(generator.new()) for _ in range(5020)]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    first = uuid.UUID(ids[0])
    assert first.version == 7 and first.variant == uuid.RFC_4122
    assert int(ids[0].replace("-", "")[:12], 16) == 1000  # the timestamp leads


@pytest.mark.airflow
@pytest.mark.slow
def test_demo_script_prints_no_loss_and_no_duplicate_coupons() -> None:
    figures = run_demo("user_coupon", DEMO_USERS="60").figures
    assert figures["users registered"] == "60"
    assert figures["events written"] == "72"
    assert figures["published (distinct ids on topic)"] == "72"
    assert figures["messages on topic (every event twice)"] == "144"
    assert figures["coupon service killed -9 after recording"] == "yes"
    assert figures["coupons issued"] == "60"
    assert figures["lost (must be 0)"] == "0"
    assert figures["duplicate business effects (must be 0)"] == "0"
    assert figures["per-user order violations (must be 0)"] == "0"


def test_why_uuid7_random_ids_would_let_the_relay_publish_a_users_events_out_of_order(
    engine: Engine, topic_name: Callable[[str], str]
) -> None:
    """The relay claims in primary-key order: two waiting events of one user whose random ids sort
    the wrong way round go out deactivation-first. (The services use uuid7(), which cannot do this.)"""
    topic = topic_name("users")
    create_topics(topic)
    insert = text(
        "INSERT INTO EventPublish (id, payload, eventType, aggregateId) VALUES (:id, '{\"user_id\": 1}', :t, '1')"
    )
    with engine.begin() as conn:  # written in this order, but a v4 id can sort either way
        conn.execute(insert, {"id": "f" + str(uuid.uuid4())[1:], "t": USER_CREATED})
    with engine.begin() as conn:
        conn.execute(insert, {"id": "0" + str(uuid.uuid4())[1:], "t": USER_DEACTIVATED})
    run_relay(example_config("user_coupon", "users", topic), engine)
    assert [r.headers["outbox-event-type"] for r in read_all(topic)] == [USER_DEACTIVATED, USER_CREATED]
