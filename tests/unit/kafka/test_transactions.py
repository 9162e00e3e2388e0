"""A batch as one Kafka transaction, with a fake transactional producer (the real broker, fencing included,
is covered in tests/integration/test_exactly_once.py and tests/faults/test_exactly_once.py)."""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException

from outbox_relay.kafka.publisher import BrokerUnavailableError
from outbox_relay.kafka.records import OutboundMessage
from outbox_relay.kafka.transactions import (
    RelayFencedError,
    TransactionalPublisher,
    TransactionsUnavailableError,
)
from tests.unit.kafka.reported import ReportedMessage


class FakeTransactionalProducer:
    """Delivery reports from ``refused`` (value -> error); ``commit_errors`` raised by successive commits."""

    def __init__(
        self, refused: dict[bytes, KafkaError] | None = None, commit_errors: list[KafkaError] | None = None
    ) -> None:
        self.refused = refused or {}
        self.commit_errors = list(commit_errors or [])
        self.calls: list[str] = []
        self.pending: list[tuple[Any, bytes, ReportedMessage]] = []
        self.init_error: KafkaError | None = None

    def init_transactions(self, timeout: float = 0) -> None:
        self.calls.append("init")
        if self.init_error is not None:
            raise KafkaException(self.init_error)

    def begin_transaction(self) -> None:
        self.calls.append("begin")

    def produce(
        self, topic: str, value: bytes, key: bytes, headers: Any = None, on_delivery: Any = None, **kw: Any
    ) -> None:
        self.pending.append((on_delivery, value, ReportedMessage(topic, key, value, headers)))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        self._report()
        return 0

    def purge(self, **kwargs: Any) -> None:
        pass

    def commit_transaction(self, timeout: float = 0) -> None:
        self.calls.append("commit")
        self._report()
        if self.commit_errors:
            raise KafkaException(self.commit_errors.pop(0))

    def abort_transaction(self, timeout: float = 0) -> None:
        self.calls.append("abort")
        for callback, _value, message in self.pending:
            callback(KafkaError(KafkaError._PURGE_QUEUE), message)
        self.pending.clear()

    def _report(self) -> None:
        for callback, value, message in self.pending:
            if value in self.refused:
                callback(self.refused[value], message)
        self.pending = [(c, v, m) for c, v, m in self.pending if v not in self.refused]


def _msg(ref: int, value: bytes, key: bytes = b"k") -> OutboundMessage:
    return OutboundMessage(ref, "t", key, value, [])


PROGRESS = OutboundMessage(-1, "progress", b"relay", b"{}", [], 0)


def _publisher(fake: FakeTransactionalProducer) -> TransactionalPublisher:
    return TransactionalPublisher(fake, 1.0, "outbox-relay.orders.all")


def test_a_committed_transaction_acknowledges_every_message() -> None:
    fake = FakeTransactionalProducer()
    outcome = _publisher(fake).publish_transaction([_msg(0, b"a"), _msg(1, b"b")], PROGRESS)
    assert [m.value for m in outcome.acked] == [b"a", b"b"] and not outcome.aborted
    assert fake.calls == ["begin", "commit"]


def test_a_refused_message_aborts_the_transaction_and_is_told_apart_from_the_innocent() -> None:
    too_large = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE, "too large", txn_requires_abort=True)
    fake = FakeTransactionalProducer({b"big": too_large}, [too_large])
    outcome = _publisher(fake).publish_transaction([_msg(0, b"a", b"1"), _msg(1, b"big", b"2")], PROGRESS)
    assert [m.value for m, _ in outcome.rejected] == [b"big"]
    assert [m.value for m in outcome.aborted] == [b"a"] and not outcome.acked
    assert fake.calls == ["begin", "commit", "abort"]


def test_a_transaction_aborted_by_the_broker_alone_leaves_every_message_unavailable() -> None:
    fake = FakeTransactionalProducer(
        commit_errors=[KafkaError(KafkaError._TRANSPORT, "down", txn_requires_abort=True)]
    )
    outcome = _publisher(fake).publish_transaction([_msg(0, b"a")], PROGRESS)
    assert not outcome.acked and not outcome.aborted
    assert [(m.value, "Kafka transaction aborted" in why) for m, why in outcome.unavailable] == [(b"a", True)]


def test_a_commit_that_timed_out_is_tried_once_more() -> None:
    fake = FakeTransactionalProducer(
        commit_errors=[KafkaError(KafkaError._TIMED_OUT, "slow", retriable=True)]
    )
    outcome = _publisher(fake).publish_transaction([_msg(0, b"a")], PROGRESS)
    assert [m.value for m in outcome.acked] == [b"a"] and fake.calls == ["begin", "commit", "commit"]


def test_a_fenced_producer_ends_the_run_saying_a_newer_relay_took_over() -> None:
    fake = FakeTransactionalProducer(commit_errors=[KafkaError(KafkaError._FENCED, "fenced", fatal=True)])
    with pytest.raises(RelayFencedError, match=r"outbox-relay\.orders\.all' was fenced by a newer relay"):
        _publisher(fake).publish_transaction([_msg(0, b"a")], PROGRESS)


def test_a_broker_without_transactions_is_refused_at_start_and_one_that_is_down_is_not_blamed() -> None:
    fake = FakeTransactionalProducer()
    fake.init_error = KafkaError(KafkaError.UNSUPPORTED_VERSION, "no InitProducerId")
    with pytest.raises(TransactionsUnavailableError, match="set delivery: at_least_once for this broker"):
        _publisher(fake).start()
    fake.init_error = KafkaError(KafkaError._TIMED_OUT, "no answer")
    with pytest.raises(BrokerUnavailableError, match=r"is the broker .* reachable"):
        _publisher(fake).start()


def test_plain_publish_is_refused_on_a_transactional_producer() -> None:
    with pytest.raises(Exception, match="publish_transaction"):
        _publisher(FakeTransactionalProducer()).publish([_msg(0, b"a")])
