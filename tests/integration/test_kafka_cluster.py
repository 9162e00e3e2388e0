"""The real-Kafka test cluster itself: leader failover under acks=all, and auto-topic-creation off.

Self-contained (own brokers on free ports, no MySQL), so a broken helper shows up here first rather than
as a confusing failure in a fault test that builds on it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

from tests.kafka_cluster import KafkaCluster

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def cluster3(tmp_path: Path) -> Iterator[KafkaCluster]:
    with KafkaCluster(3, tmp_path / "kafka3") as cluster:
        yield cluster


@pytest.fixture
def cluster1(tmp_path: Path) -> Iterator[KafkaCluster]:
    with KafkaCluster(1, tmp_path / "kafka1") as cluster:
        yield cluster


def produce(bootstrap: str, topic: str, values: list[bytes], **config: Any) -> list[KafkaError | None]:
    """Produce and flush; one delivery result per message (None = acknowledged)."""
    results: list[KafkaError | None] = []
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "message.timeout.ms": 60_000,
            **config,
        }
    )
    for value in values:
        producer.produce(topic, value, on_delivery=lambda err, _msg: results.append(err))
    remaining = producer.flush(90)
    assert remaining == 0, f"{remaining} messages still in flight after 90 s"
    return results


def read_all(bootstrap: str, topic: str, expected: int, timeout: float = 60.0) -> list[bytes]:
    """Read partition 0 from the beginning until `expected` records or the deadline."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4().hex}", "enable.auto.commit": False}
    )
    consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
    values: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while len(values) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            value = msg.value()
            assert msg.error() is None and value is not None, msg.error()
            values.append(value)
    finally:
        consumer.close()
    return values


def test_acks_all_survives_leader_kill_and_restart(cluster3: KafkaCluster) -> None:
    topic = f"t.failover.{uuid.uuid4().hex[:8]}"
    cluster3.create_topic(topic, partitions=1, replication_factor=3)
    first = [f"a-{i}".encode() for i in range(100)]
    assert produce(cluster3.bootstrap, topic, first) == [None] * 100

    leader = cluster3.leader_of(topic, 0)
    cluster3.kill(leader)
    second = [f"b-{i}".encode() for i in range(100)]
    assert produce(cluster3.bootstrap, topic, second) == [None] * 100
    assert cluster3.leader_of(topic, 0) not in (leader, -1)

    cluster3.restart(leader)
    assert cluster3.node_pids[leader] is not None
    values = read_all(cluster3.bootstrap, topic, expected=200)
    assert len(values) == 200
    assert sorted(values) == sorted(first + second)


def test_single_node_does_not_auto_create_topics(cluster1: KafkaCluster) -> None:
    topic = f"t.missing.{uuid.uuid4().hex[:8]}"
    results = produce(
        cluster1.bootstrap,
        topic,
        [b"x"],
        **{"message.timeout.ms": 5_000, "topic.metadata.propagation.max.ms": 1_000},
    )
    assert len(results) == 1 and results[0] is not None
    assert results[0].code() in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC)
    # A Metadata request that allows auto-creation still finds nothing, and the topic never appears.
    metadata = cluster1.metadata([topic])
    assert metadata.topic_errors[topic] == KafkaError.UNKNOWN_TOPIC_OR_PART
    assert metadata.topics[topic] == {}
