"""The peers benchmark's wait on a topic's message count (tests/benchmarks/peers.py), on the real broker.
It runs inside measured windows (Debezium's drain), so besides its count it must keep to one client for
the whole wait: a client per poll was CPU charged to the peer being measured."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.benchmarks import peers
from tests.integration.kafka_tools import create_topics, producer, send

pytestmark = pytest.mark.integration


@pytest.fixture
def topic(topic_name: Callable[[str], str]) -> str:
    """A fresh topic with the peers' partition count (their offset reads cover exactly those)."""
    name = topic_name("peers_wait")
    create_topics(name, partitions=peers.PARTITIONS)
    return name


@pytest.fixture
def consumers_made(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """The config of every consumer ``peers`` creates from here on."""
    made: list[dict[str, Any]] = []
    real = peers.Consumer

    def counting(config: dict[str, Any]) -> Any:
        made.append(config)
        return real(config)

    monkeypatch.setattr(peers, "Consumer", counting)
    yield made


def _trickle(topic: str, count: int, gap: float) -> threading.Thread:
    """Produce ``count`` messages, one every ``gap`` seconds, in the background (the wait polls meanwhile)."""

    def run() -> None:
        out = producer()
        for i in range(count):
            time.sleep(gap)
            out.produce(topic, key=f"k{i}".encode(), value=b"v")
            out.flush(10)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_wait_for_count_returns_the_count_reached_polling_on_one_client(
    topic: str, consumers_made: list[dict[str, Any]]
) -> None:
    started = time.monotonic()
    writer = _trickle(topic, 6, 0.1)
    assert peers.wait_for_count(topic, 6, 60) == 6
    writer.join(10)
    assert time.monotonic() - started >= 0.5  # it polled many times while the messages trickled in
    assert len(consumers_made) == 1


def test_a_stalled_wait_returns_early_with_the_messages_found(
    topic: str, consumers_made: list[dict[str, Any]]
) -> None:
    send(topic, [(f"k{i}", b"v") for i in range(3)])
    started = time.monotonic()
    assert peers.wait_for_count(topic, 5, 60, stall=1.0) == 3
    assert 1.0 <= time.monotonic() - started < 30  # the stall ended it, long before its 60 s
    assert len(consumers_made) == 1


def test_a_wait_past_its_deadline_or_past_its_count_fails(topic: str) -> None:
    send(topic, [(f"k{i}", b"v") for i in range(3)])
    with pytest.raises(RuntimeError, match=r"after 0\.5s, expected 5"):
        peers.wait_for_count(topic, 5, 0.5)
    with pytest.raises(RuntimeError, match="duplicates"):
        peers.wait_for_count(topic, 2, 10)
