"""``delivery: exactly_once`` against the real MariaDB and Apache Kafka: each batch is a Kafka transaction
with a progress record; after a failure between the Kafka commit and the database commit the next run marks
the batch SENT without publishing it again; a second relay fences the first. What landed is read back with
kafka-python in read_committed mode (a second client library)."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.kafka.records import OutboundMessage
from outbox_relay.kafka.transactions import RelayFencedError
from outbox_relay.models import HistoryEntry
from outbox_relay.relay.engine import RelayDatabaseError, RunRequest
from outbox_relay.relay.exactly_once import ExactlyOnce
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, make_relay, run_relay, sent_by, statuses, transactional
from tests.stack import BROKER

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BROKER != "kafka", reason="Kafka transactions: the Tansu run checks the refusal"),
]


@pytest.fixture
def exactly_once(service_config: Callable[..., ServiceConfig]) -> Callable[..., ServiceConfig]:
    """A service delivering exactly once, with a deployment prefix of its own (its relays' ids and
    progress keys cannot meet another test's)."""

    def build(**fields: Any) -> ServiceConfig:
        prefix = f"t{uuid.uuid4().hex[:10]}"
        kafka = {
            "transactional_id_prefix": prefix,
            "transaction_timeout_ms": 10_000,
            "delivery_timeout_ms": 10_000,
            **fields.pop("kafka", {}),
        }
        return service_config(delivery="exactly_once", kafka=kafka, **fields)

    return build


def _message_ids(topic: str) -> Counter[str]:
    return Counter(r.headers["outbox-message-id"] for r in read_all(topic))


def _checkpoint(engine: Engine, service: str) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(
                text("SELECT seq FROM outbox_relay_progress WHERE service = :s AND shard = -1"),
                {"s": service},
            ).scalar_one()
        )


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "serial"])
def test_every_row_lands_once_in_key_order_and_each_batch_is_recorded(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    exactly_once: Callable[..., ServiceConfig],
    pipelining: bool,
) -> None:
    topic = topic_name("eos")
    create_topics(topic)
    keys = [f"k{i % 7}" for i in range(250)]
    ids = insert_rows(db_engine, topic, keys)
    config = exactly_once(topic=topic, batch_size=40, pipelining=pipelining)

    stats = run_relay(config, db_engine, run_id="scheduled__1")

    assert (stats.published, stats.batches, stats.recovered) == (250, 7, 0)
    assert set(statuses(db_engine).values()) == {"SENT"}
    assert _message_ids(topic) == Counter(ids)  # each exactly once
    records = read_all(topic)
    assert [r.headers["outbox-message-id"] for r in records if r.key == "k3"] == [
        m for m, k in zip(ids, keys, strict=True) if k == "k3"
    ]
    assert _checkpoint(db_engine, "orders") == 7  # every batch's number recorded with its rows


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "serial"])
def test_a_failure_after_the_kafka_commit_is_finished_by_the_next_run_without_publishing_again(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    exactly_once: Callable[..., ServiceConfig],
    monkeypatch: pytest.MonkeyPatch,
    pipelining: bool,
) -> None:
    """The database dies after the third batch's Kafka commit, before its SENT update commits: the exact
    window in which at-least-once delivery publishes a batch twice."""
    topic = topic_name("eos_crash")
    create_topics(topic)
    ids = insert_rows(db_engine, topic, [f"k{i % 5}" for i in range(200)])
    config = exactly_once(topic=topic, batch_size=30, pipelining=pipelining)
    record = ExactlyOnce.record

    def dies_at_the_third(self: ExactlyOnce, conn: Any, seq: int) -> None:
        if seq == 3:
            conn.execute(text("KILL CONNECTION_ID()"))  # the server drops this session mid-transaction
        record(self, conn, seq)

    monkeypatch.setattr(ExactlyOnce, "record", dies_at_the_third)
    with pytest.raises(
        RelayDatabaseError, match="marks them SENT from the batch's committed progress record"
    ):
        run_relay(config, db_engine, run_id="scheduled__1")
    monkeypatch.setattr(ExactlyOnce, "record", record)
    left = sum(1 for s in statuses(db_engine).values() if s == "NEW")
    assert left == 200 - 60  # batches 1 and 2 recorded; 3 committed in Kafka only

    stats = run_relay(config, db_engine, run_id="scheduled__2")

    # Batch 3, and with pipelining batch 4 too when its transaction committed before batch 3's update failed.
    assert stats.recovered in ({30, 60} if pipelining else {30})
    assert stats.recovered + stats.published == 200 - 60
    assert set(statuses(db_engine).values()) == {"SENT"}
    assert _message_ids(topic) == Counter(ids)  # not one duplicate
    runs = Counter(sent_by(db_engine, config).values())
    # The recovered rows keep the run that sent them.
    assert runs == {"scheduled__1": 60 + stats.recovered, "scheduled__2": stats.published}


def test_a_second_relay_fences_the_first_whose_open_transaction_is_aborted(
    db_engine: Engine, topic_name: Callable[[str], str], exactly_once: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("eos_fence")
    create_topics(topic)
    ids = insert_rows(db_engine, topic, [f"k{i}" for i in range(20)])
    config = exactly_once(topic=topic, batch_size=50)
    relay_id = f"{config.kafka.transactional_id_prefix}.orders.all"
    zombie = transactional(config, relay_id)
    zombie.start()
    zombie.producer.begin_transaction()
    zombie.producer.produce(topic, b"from a zombie", b"k0")
    zombie.producer.flush(10)  # in the log, inside a transaction that stays open

    stats = run_relay(config, db_engine, run_id="scheduled__2")  # starts by fencing the zombie

    assert stats.published == 20
    with pytest.raises(KafkaException) as refused:
        zombie.producer.commit_transaction(10)
    assert refused.value.args[0].code() == KafkaError._FENCED
    # A relay that learns it was fenced while committing a batch says so (and its run fails).
    late = transactional(config, relay_id)
    late.start()
    ids += insert_rows(db_engine, topic, ["k1"])
    assert run_relay(config, db_engine, run_id="scheduled__3").published == 1
    with pytest.raises(RelayFencedError, match="fenced by a newer relay with the same transactional id"):
        late.publish_transaction([OutboundMessage(0, topic, b"k0", b"late", [])], _progress(config))
    values = [r.value for r in read_all(topic)]
    assert b"from a zombie" not in values and b"late" not in values  # aborted: read_committed never sees them
    assert _message_ids(topic) == Counter(ids)


def _progress(config: ServiceConfig) -> OutboundMessage:
    return OutboundMessage(-1, config.kafka.progress_topic, b"x", b"{}", [], 0)


def test_poison_rows_are_dead_lettered_inside_the_batch_transaction(
    db_engine: Engine, topic_name: Callable[[str], str], exactly_once: Callable[..., ServiceConfig]
) -> None:
    topic, dead = topic_name("eos_poison"), topic_name("eos_dead")
    create_topics(topic, dead)
    good = insert_rows(db_engine, topic, ["a", "b", "c"])
    with db_engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO outbox_message (message_id, aggregate_id, event_type, topic, payload) "
                "VALUES ('poison-1', 'p', 'Evt', :t, 'not json')"
            ),
            {"t": topic},
        )
    config = exactly_once(topic=topic, dead_letter_topic=dead, retry={"max_attempts": 1})

    stats = run_relay(config, db_engine)

    assert (stats.published, stats.failed, stats.dead_lettered) == (3, 1, 1)
    assert statuses(db_engine)["poison-1"] == "FAILED"
    assert _message_ids(topic) == Counter(good)
    assert [r.headers["outbox-message-id"] for r in read_all(dead)] == ["poison-1"]


def test_a_message_the_broker_refuses_fails_its_row_and_the_batch_is_sent_again_without_it(
    db_engine: Engine, topic_name: Callable[[str], str], exactly_once: Callable[..., ServiceConfig]
) -> None:
    """One row goes to a topic that takes at most 2,000 bytes a message (the client would send 1 MB). The
    broker's refusal aborts the batch's transaction: that row fails, the rest of the batch is committed in a
    second transaction, and the newer row of its key waits for its retry."""
    topic, small_topic = topic_name("eos_ok"), topic_name("eos_small")
    create_topics(topic)
    create_topics(small_topic, partitions=1, config={"max.message.bytes": "2000"})
    first = insert_rows(db_engine, topic, ["a", "b", "c"])
    big = insert_rows(db_engine, small_topic, ["d"], payload={"blob": "x" * 5000})
    later = insert_rows(db_engine, topic, ["d", "e"])
    config = exactly_once(topics=[topic, small_topic])

    stats = run_relay(config, db_engine)

    assert (stats.published, stats.retried, stats.held_back) == (4, 1, 1)
    found = statuses(db_engine)
    assert found[big[0]] == "NEW" and found[later[0]] == "NEW"  # the refused row, and its key's next one
    assert _message_ids(topic) == Counter(first + later[1:])
    assert read_all(small_topic) == []


def test_without_the_progress_table_the_relay_refuses_to_start_naming_it(
    db_engine: Engine, topic_name: Callable[[str], str], exactly_once: Callable[..., ServiceConfig]
) -> None:
    topic = topic_name("eos_table")
    create_topics(topic)
    insert_rows(db_engine, topic, ["a"])
    with db_engine.begin() as conn:
        conn.execute(text("DROP TABLE outbox_relay_progress"))
    relay = make_relay(exactly_once(topic=topic), db_engine)

    with pytest.raises(Exception, match="outbox_relay_progress; create it: outbox-relay ddl --shared-only"):
        relay.run(RunRequest(run_id="r"))
    assert statuses(db_engine) and set(statuses(db_engine).values()) == {"NEW"}
    assert read_all(topic) == []


def test_a_whole_table_run_finishes_what_a_crashed_shard_left_and_fences_it(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    exactly_once: Callable[..., ServiceConfig],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Shard 0's relay dies after its second batch's Kafka commit. A run over the whole table (a backfill,
    a replay, the CLI without --shard) overlaps every shard: it fences the shards' producers, reads their
    progress records and marks that batch SENT before relaying the rest."""
    topic = topic_name("eos_shards")
    create_topics(topic)
    ids = insert_rows(db_engine, topic, [f"k{i % 16}" for i in range(400)])
    config = exactly_once(topic=topic, batch_size=50, shards=2, pipelining=False)
    record = ExactlyOnce.record

    def dies_at_the_second(self: ExactlyOnce, conn: Any, seq: int) -> None:
        if seq == 2:
            conn.execute(text("KILL CONNECTION_ID()"))
        record(self, conn, seq)

    monkeypatch.setattr(ExactlyOnce, "record", dies_at_the_second)
    with pytest.raises(RelayDatabaseError):
        run_relay(config, db_engine, run_id="shard0", shard=0)
    monkeypatch.setattr(ExactlyOnce, "record", record)

    stats = run_relay(config, db_engine, run_id="whole")

    assert stats.recovered == 50
    assert set(statuses(db_engine).values()) == {"SENT"}
    assert _message_ids(topic) == Counter(ids)
    shard_zero = transactional(config, f"{config.kafka.transactional_id_prefix}.orders.0")
    shard_zero.start()  # a new shard-0 relay can start again: fencing is per relay, not forever
    assert run_relay(config, db_engine, run_id="shard0-again", shard=0).published == 0


def test_a_replay_republishes_in_a_transaction_says_so_in_its_headers_and_keeps_the_history(
    db_engine: Engine, topic_name: Callable[[str], str], exactly_once: Callable[..., ServiceConfig]
) -> None:
    """A deliberate republish (a replay of SENT rows) is a new message by design: exactly once sends it in a
    transaction of its own batch, marked ``outbox-replay: true``, and records it in the row history."""
    topic = topic_name("eos_replay")
    create_topics(topic)
    ids = insert_rows(db_engine, topic, ["a", "b", "c"])
    config = exactly_once(topic=topic)
    assert run_relay(config, db_engine, run_id="scheduled__1").published == 3
    with db_engine.connect() as conn:
        row_ids = list(conn.execute(text("SELECT id FROM outbox_message ORDER BY id")).scalars())
    who = HistoryEntry("oncall@example.com", "INC-9: consumer lost its state", "manual__replay_1")

    stats = run_relay(
        config,
        db_engine,
        run_id="manual__replay_1",
        named_rows=tuple(row_ids[:2]),
        republish=True,
        history=who,
    )

    assert (stats.published, stats.republished) == (0, 2)
    replays = [r for r in read_all(topic) if r.headers.get("outbox-replay") == "true"]
    assert sorted(r.headers["outbox-message-id"] for r in replays) == sorted(ids[:2])
    assert _message_ids(topic) == Counter({ids[0]: 2, ids[1]: 2, ids[2]: 1})
    with db_engine.connect() as conn:
        history = conn.execute(
            text("SELECT COUNT(*) FROM outbox_relay_replay WHERE run_id = 'manual__replay_1'")
        )
        assert history.scalar_one() == 2
    assert set(statuses(db_engine).values()) == {"SENT"}
