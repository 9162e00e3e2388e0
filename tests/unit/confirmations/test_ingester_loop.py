"""The consume loop's stop rules and error handling, and the confirmation ingester on top of it, driven by
a fake clock and a fake consumer (no broker): a wrong stop rule either wedges a task until its timeout or
ends it before the result topic is read."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NamedTuple

import pytest
from confluent_kafka import KafkaError, KafkaException

from outbox_relay.config import ServiceConfig
from outbox_relay.confirmations import ConfirmationIngester
from outbox_relay.kafka.consume import ConsumeLoop, ConsumerFailedError, commit_offsets
from outbox_relay.models import ConfirmationMessage

TOPIC = "orders.results"
POLL_SECONDS = 0.5  # what ConsumeLoop asks consume() to wait; the fake consumer spends it on the clock


class FakeClock:
    """Monotonic time that only moves when the fake consumer waits."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TP(NamedTuple):
    topic: str
    partition: int


class FakeError:
    """The part of confluent_kafka.KafkaError the loop reads."""

    def __init__(self, code: int, fatal: bool = False, text: str = "broken", name: str = "_FAKE") -> None:
        self._code, self._fatal, self._text, self._name = code, fatal, text, name

    def code(self) -> int:
        return self._code

    def fatal(self) -> bool:
        return self._fatal

    def name(self) -> str:
        return self._name

    def str(self) -> str:  # last: inside the class body the name str means this method from here on
        return self._text


class FakeMessage:
    def __init__(
        self,
        partition: int = 0,
        value: bytes | None = None,
        error: FakeError | None = None,
        offset: int = 0,
        headers: list[tuple[str, bytes]] | None = None,
    ) -> None:
        self._partition, self._value, self._error = partition, value, error
        self._offset, self._headers = offset, headers

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes]] | None:
        return self._headers

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def error(self) -> FakeError | None:
        return self._error


def eof(partition: int) -> FakeMessage:
    return FakeMessage(partition, error=FakeError(KafkaError._PARTITION_EOF, name="_PARTITION_EOF"))


def data(partition: int = 0, value: bytes = b"{}", offset: int = 0) -> FakeMessage:
    return FakeMessage(partition, value=value, offset=offset)


class FakeConsumer:
    """Hands out scripted batches (then nothing); each consume() waits its timeout on the fake clock.
    The partitions are assigned once ``assigned_after`` consume calls have been made."""

    def __init__(
        self,
        clock: FakeClock,
        batches: Sequence[list[FakeMessage]] = (),
        partitions: Sequence[int] = (0,),
        assigned_after: int = 0,
        every_time: list[FakeMessage] | None = None,
        commit_error: Exception | None = None,
        events: list[str] | None = None,
    ) -> None:
        self.clock = clock
        self.batches = list(batches)
        self.partitions = [TP(TOPIC, p) for p in partitions]
        self.assigned_after = assigned_after
        self.every_time = every_time
        self.commit_error = commit_error
        self.events = events if events is not None else []
        self.consumes = 0
        self.commits: list[dict[str, Any]] = []

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        self.consumes += 1
        self.clock.now += timeout
        if self.batches:
            return self.batches.pop(0)
        return list(self.every_time or [])

    def commit(self, *args: Any, **kwargs: Any) -> None:
        self.events.append("commit")
        self.commits.append(kwargs)
        if self.commit_error is not None:
            raise self.commit_error

    def assignment(self) -> list[TP]:
        return self.partitions if self.consumes >= self.assigned_after else []


def _drain(loop: ConsumeLoop) -> list[list[Any]]:
    return list(loop)


# --- ConsumeLoop ----------------------------------------------------------------------


def test_stops_once_every_assigned_partition_reported_its_end() -> None:
    """Caught up means all partitions: one partition's end must not stop the reading of the others."""
    clock = FakeClock()
    consumer = FakeConsumer(clock, [[eof(0)], [eof(1)]], partitions=(0, 1), every_time=[data()])
    loop = ConsumeLoop(consumer, time_budget_seconds=100, idle_seconds=50, clock=clock)
    assert _drain(loop) == []
    assert loop.stopped_because == "caught up"
    assert consumer.consumes == 2


def test_data_after_the_end_of_a_partition_reopens_it() -> None:
    """A partition that got new messages after its end is not caught up until its next end."""
    clock = FakeClock()
    fresh = data(0, offset=7)
    consumer = FakeConsumer(clock, [[eof(0)], [fresh, eof(1)], [eof(0)]], partitions=(0, 1))
    loop = ConsumeLoop(consumer, time_budget_seconds=100, idle_seconds=50, clock=clock)
    assert _drain(loop) == [[fresh]]
    assert loop.stopped_because == "caught up"
    assert consumer.consumes == 3


def test_stops_after_idle_seconds_of_silence_once_assigned() -> None:
    """An assigned consumer that hears nothing (no EOF either) stops after idle_seconds, naming them."""
    clock = FakeClock()
    consumer = FakeConsumer(clock)
    loop = ConsumeLoop(consumer, time_budget_seconds=100, idle_seconds=2, clock=clock)
    assert _drain(loop) == []
    assert loop.stopped_because == "no messages for 2s"
    assert clock.now == 2.0
    assert consumer.consumes == 4


def test_silence_is_counted_from_the_last_data() -> None:
    """Messages are activity: idleness restarts at the last batch that had data."""
    clock = FakeClock()
    consumer = FakeConsumer(clock, [[], [data()]])
    loop = ConsumeLoop(consumer, time_budget_seconds=100, idle_seconds=1.5, clock=clock)
    assert len(_drain(loop)) == 1
    assert loop.stopped_because == "no messages for 1.5s"
    assert clock.now == 2.5  # data at t=1.0, then 1.5 s of silence
    assert consumer.consumes == 5


def test_stops_when_the_time_budget_is_spent() -> None:
    """A topic that never runs dry cannot keep the task beyond its budget."""
    clock = FakeClock()
    consumer = FakeConsumer(clock, every_time=[data()])
    loop = ConsumeLoop(consumer, time_budget_seconds=3, idle_seconds=1, clock=clock)
    batches = _drain(loop)
    assert loop.stopped_because == "time budget spent"
    assert clock.now == 3.0
    assert len(batches) == consumer.consumes == 6


def test_a_zero_budget_consumes_nothing() -> None:
    """The budget is checked before the first consume."""
    clock = FakeClock()
    consumer = FakeConsumer(clock, every_time=[data()])
    loop = ConsumeLoop(consumer, time_budget_seconds=0, idle_seconds=1, clock=clock)
    assert _drain(loop) == []
    assert loop.stopped_because == "time budget spent"
    assert consumer.consumes == 0


def test_never_stops_for_idleness_before_assignment() -> None:
    """Joining a group can take longer than idle_seconds: that wait is not silence."""
    clock = FakeClock()
    consumer = FakeConsumer(clock, assigned_after=10**6)  # never assigned
    loop = ConsumeLoop(consumer, time_budget_seconds=5, idle_seconds=1, clock=clock)
    assert _drain(loop) == []
    assert loop.stopped_because == "time budget spent"
    assert clock.now == 5.0


def test_idleness_counts_from_the_assignment() -> None:
    """Once assigned after a slow join, idle_seconds of silence still stop the loop (not the budget)."""
    clock = FakeClock()
    consumer = FakeConsumer(clock, assigned_after=6)  # assigned during the 6th consume, at t=3.0
    loop = ConsumeLoop(consumer, time_budget_seconds=10, idle_seconds=1, clock=clock)
    assert _drain(loop) == []
    assert loop.stopped_because == "no messages for 1s"
    assert clock.now == 4.0


def test_a_fatal_error_raises_consumer_failed() -> None:
    """A fatal librdkafka error ends this consumer; the error names the reader and the cause."""
    clock = FakeClock()
    fatal = FakeError(KafkaError._FATAL, fatal=True, text="fenced by a newer instance", name="_FATAL")
    consumer = FakeConsumer(clock, [[FakeMessage(0, error=fatal)]])
    loop = ConsumeLoop(consumer, time_budget_seconds=100, idle_seconds=50, name="svc x", clock=clock)
    with pytest.raises(ConsumerFailedError) as caught:
        _drain(loop)
    assert str(caught.value) == "svc x: Kafka consumer failed: _FATAL: fenced by a newer instance"


def test_a_non_fatal_error_is_logged_and_skipped(caplog: pytest.LogCaptureFixture) -> None:
    """A transient error must neither fail the reader nor hide the data next to it."""
    clock = FakeClock()
    transient = FakeError(KafkaError._TRANSPORT, text="broker went away")
    message = data(0)
    consumer = FakeConsumer(clock, [[FakeMessage(0, error=transient), message], [eof(0)]])
    loop = ConsumeLoop(consumer, time_budget_seconds=100, idle_seconds=50, name="reader", clock=clock)
    with caplog.at_level(logging.WARNING, logger="outbox_relay.kafka.consume"):
        batches = _drain(loop)
    assert batches == [[message]]
    assert loop.stopped_because == "caught up"
    assert "reader: consumer error: broker went away" in caplog.messages


def test_stop_at_end_false_ignores_the_end_of_partitions() -> None:
    """A reader expecting more messages keeps reading past the end until silence or the budget."""
    clock = FakeClock()
    consumer = FakeConsumer(clock, every_time=[eof(0)])
    loop = ConsumeLoop(consumer, time_budget_seconds=100, idle_seconds=2, stop_at_end=False, clock=clock)
    assert _drain(loop) == []
    assert loop.stopped_because == "no messages for 2s"  # EOF events are not activity either
    assert consumer.consumes == 4


def test_commit_offsets_commits_synchronously() -> None:
    """Offsets must be stored before the next batch is read, so the commit waits."""
    consumer = FakeConsumer(FakeClock())
    commit_offsets(consumer)
    assert consumer.commits == [{"asynchronous": False}]


def test_commit_offsets_accepts_nothing_to_commit() -> None:
    """A batch of only errors/EOF leaves no offset: that is not a failure."""
    consumer = FakeConsumer(FakeClock(), commit_error=KafkaException(KafkaError(KafkaError._NO_OFFSET)))
    commit_offsets(consumer)
    assert len(consumer.commits) == 1


def test_commit_offsets_reraises_other_errors() -> None:
    """A real commit failure must surface: the batch would otherwise be re-read silently forever."""
    error = KafkaException(KafkaError(KafkaError._TRANSPORT))
    consumer = FakeConsumer(FakeClock(), commit_error=error)
    with pytest.raises(KafkaException) as caught:
        commit_offsets(consumer)
    assert caught.value is error


# --- ConfirmationIngester ---------------------------------------------------------------


def _config() -> ServiceConfig:
    return ServiceConfig.model_validate(
        {"service": "orders", "topic": "orders.events", "confirmation": {"topic": TOPIC}}
    )


def _ingester(clock: FakeClock, consumer: FakeConsumer, engine: Any = None) -> ConfirmationIngester:
    """engine None: the test consumes no data message, so no transaction may be opened."""
    return ConfirmationIngester(_config(), engine, consumer, clock=clock)


def _answer(message_id: str | None, status: str, error: str | None = None, offset: int = 0) -> FakeMessage:
    document: dict[str, Any] = {"status": status}
    if message_id is not None:
        document["message_id"] = message_id
    if error is not None:
        document["error"] = error
    return data(0, json.dumps(document).encode(), offset)


class FakeEngine:
    """engine.begin() as a context manager; records when the transaction was opened."""

    def __init__(self, events: list[str]) -> None:
        self.events = events
        self.conn = object()

    def begin(self) -> AbstractContextManager[object]:
        self.events.append("begin")
        return nullcontext(self.conn)


def _fake_apply(
    events: list[str], received: list[list[ConfirmationMessage]], result: tuple[int, int, list[str]]
) -> Callable[[Any, Sequence[ConfirmationMessage]], tuple[int, int, list[str]]]:
    def apply(conn: Any, confirmations: Sequence[ConfirmationMessage]) -> tuple[int, int, list[str]]:
        events.append("apply")
        received.append(list(confirmations))
        return result

    return apply


def test_ingester_stops_caught_up_without_touching_the_database() -> None:
    """Nothing to read: no transaction and no commit (engine None would fail otherwise)."""
    clock = FakeClock()
    consumer = FakeConsumer(clock, [[eof(0)]])
    stats = _ingester(clock, consumer).run(time_budget_seconds=60)
    assert stats.stopped_because == "caught up"
    assert (stats.messages, stats.batches, stats.confirmed) == (0, 0, 0)
    assert stats.elapsed_seconds == POLL_SECONDS
    assert consumer.commits == []


def test_ingester_stops_on_silence_and_says_so() -> None:
    """The run's stats carry the loop's reason, for the task log and XCom."""
    clock = FakeClock()
    consumer = FakeConsumer(clock)
    stats = _ingester(clock, consumer).run(60, idle_seconds=1.5)
    assert stats.stopped_because == "no messages for 1.5s"
    assert stats.elapsed_seconds == 1.5


def test_ingester_stops_when_the_budget_is_spent() -> None:
    """A consumer that never gets partitions ends with the budget, not idleness."""
    clock = FakeClock()
    consumer = FakeConsumer(clock, assigned_after=10**6)
    stats = _ingester(clock, consumer).run(4, idle_seconds=1)
    assert stats.stopped_because == "time budget spent"
    assert stats.elapsed_seconds == 4.0


def test_ingester_applies_a_batch_then_commits(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Parsed answers go to the store in one transaction, malformed ones are counted and skipped, and
    the offsets are committed only after the database write."""
    clock = FakeClock()
    events: list[str] = []
    batch = [
        _answer("m1", "SUCCESS"),
        _answer("m2", "FAILED", "out of stock"),
        _answer(None, "OK", offset=3),  # malformed: no id anywhere
        _answer("m3", "OK"),
    ]
    consumer = FakeConsumer(clock, [batch, [eof(0)]], events=events)
    ingester = _ingester(clock, consumer, FakeEngine(events))
    received: list[list[ConfirmationMessage]] = []
    monkeypatch.setattr(ingester.store, "apply_confirmations", _fake_apply(events, received, (1, 1, ["m3"])))
    with caplog.at_level(logging.WARNING, logger="outbox_relay.confirmations"):
        stats = ingester.run(60)
    assert events == ["begin", "apply", "commit"]
    assert received == [
        [
            ConfirmationMessage("m1", True, None),
            ConfirmationMessage("m2", False, "out of stock"),
            ConfirmationMessage("m3", True, None),
        ]
    ]
    assert consumer.commits == [{"asynchronous": False}]
    assert (stats.messages, stats.malformed, stats.batches) == (4, 1, 1)
    assert (stats.confirmed, stats.failed, stats.unknown, stats.unchanged) == (1, 1, 1, 0)
    assert stats.unknown_examples == ["m3"]
    assert stats.stopped_because == "caught up"
    assert any(f"{TOPIC}[0]@3" in m and "no 'message_id'" in m for m in caplog.messages)


def test_ingester_counts_answers_that_changed_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """Duplicates and answers for rows already terminal are 'unchanged', not lost from the counts."""
    clock = FakeClock()
    events: list[str] = []
    batch = [_answer("m1", "OK"), _answer("m1", "OK"), _answer("m2", "FAILED")]
    consumer = FakeConsumer(clock, [batch, [eof(0)]], events=events)
    ingester = _ingester(clock, consumer, FakeEngine(events))
    monkeypatch.setattr(ingester.store, "apply_confirmations", _fake_apply(events, [], (1, 0, [])))
    stats = ingester.run(60)
    assert (stats.confirmed, stats.failed, stats.unknown, stats.unchanged) == (1, 0, 0, 2)
    assert stats.unknown_examples == []
