"""``group_lag`` against the real broker: it sees what a consumer group has not committed yet, and reading
it neither joins the group nor moves its offsets nor creates the topic it asks about (the ``@messages``
trigger asks it every few seconds, through one admin client for every service of a Kafka connection)."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from outbox_relay.kafka.lag import group_lag
from tests.integration.kafka_tools import BOOTSTRAP, create_topics, send

pytestmark = pytest.mark.integration


def _consume(consumer: Consumer, count: int) -> int:
    """Consume ``count`` data messages (failing after 30 s of polls) and commit them."""
    got = 0
    for _ in range(60):
        got += sum(1 for m in consumer.consume(num_messages=count - got, timeout=0.5) if m.error() is None)
        if got == count:
            consumer.commit(asynchronous=False)
            return got
    raise AssertionError(f"consumed {got} of {count} messages")


def test_lag_follows_the_groups_commits_without_touching_the_group(topic_name: Callable[[str], str]) -> None:
    topic = topic_name("acks")
    create_topics(topic, partitions=2)
    group = f"lag-{uuid.uuid4().hex[:8]}"
    probe = AdminClient({"bootstrap.servers": BOOTSTRAP, "allow.auto.create.topics": False})
    member = Consumer(
        {"bootstrap.servers": BOOTSTRAP, "group.id": group, "enable.auto.commit": False,
         "auto.offset.reset": "earliest"}
    )  # fmt: skip
    try:
        assert group_lag(probe, group, topic_name("never-created")).waiting == 0
        send(topic, [(f"k{i}", b"{}") for i in range(5)])
        before = group_lag(probe, group, topic)
        assert before.waiting == 5 and before.committed == (-1, -1)  # nothing committed: all of it waits

        member.subscribe([topic])
        assert _consume(member, 5) == 5
        caught_up = group_lag(probe, group, topic)
        assert caught_up.waiting == 0 and sum(caught_up.committed) == 5  # the commits moved the mark

        send(topic, [("k9", b"{}"), ("k8", b"{}")])
        assert group_lag(probe, group, topic).waiting == 2
        assert _consume(member, 2) == 2  # the member still owns every partition: the probe never joined
        assert len(member.assignment()) == 2
        assert group_lag(probe, group, topic).waiting == 0
        assert group_lag(probe, f"{group}-other", topic).waiting == 7  # another service's group, same client
    finally:
        member.close()
