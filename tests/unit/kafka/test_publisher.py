"""Publisher bookkeeping with a fake producer (the real broker is covered in tests/integration)."""

from __future__ import annotations

from typing import Any

from confluent_kafka import KafkaError

from outbox_relay.kafka.publisher import NO_REPORT, KafkaPublisher
from outbox_relay.kafka.records import OutboundMessage
from tests.unit.kafka.reported import ReportedMessage


class FakeProducer:
    def __init__(self, outcomes: dict[bytes, Any]) -> None:
        self.outcomes = outcomes
        self.pending: list[tuple[Any, Any, ReportedMessage]] = []
        self.purged = False

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
        outcome = self.outcomes.get(value, None)
        if isinstance(outcome, str):
            return
        self.pending.append((on_delivery, outcome, ReportedMessage(topic, key, value, headers)))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        for callback, err, message in self.pending:
            callback(err, message)
        self.pending.clear()
        return 1 if any(isinstance(v, str) for v in self.outcomes.values()) and not self.purged else 0

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.purged = True


def _msg(value: bytes, key: bytes = b"k") -> OutboundMessage:
    return OutboundMessage(0, "t", key, value, [])


def test_every_report_is_classified() -> None:
    fake = FakeProducer(
        {
            b"ok": None,
            b"reject": KafkaError(KafkaError.MSG_SIZE_TOO_LARGE),
            b"down": KafkaError(KafkaError._MSG_TIMED_OUT),
            b"lost": "never",
        }
    )
    outcome = KafkaPublisher(fake, 0.1).publish(
        [_msg(b"ok", b"a"), _msg(b"reject", b"b"), _msg(b"down", b"c"), _msg(b"lost", b"d")]
    )
    assert [m.value for m in outcome.acked] == [b"ok"]
    assert [m.value for m, _ in outcome.rejected] == [b"reject"]
    assert sorted(m.value for m, _ in outcome.unavailable) == [b"down", b"lost"]
    assert NO_REPORT in dict((m.value, r) for m, r in outcome.unavailable)[b"lost"]
    assert fake.purged


class RejectingProducer(FakeProducer):
    def produce(self, topic: str, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
        from confluent_kafka import KafkaException

        if value == b"too-big":
            raise KafkaException(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
        super().produce(topic, value, key, headers, on_delivery)


def test_sync_rejection_holds_back_newer_messages_of_the_same_key() -> None:
    outcome = KafkaPublisher(RejectingProducer({}), 1).publish(
        [_msg(b"too-big", b"a"), _msg(b"after", b"a"), _msg(b"other", b"b")]
    )
    assert [m.value for m in outcome.held] == [b"after"]
    assert [m.value for m in outcome.acked] == [b"other"]


class FailureReportsOnly(FakeProducer):
    """A producer with ``delivery.report.only.error``: a delivered message gets no report at all."""

    def __init__(self, outcomes: dict[bytes, Any], completes: bool = True) -> None:
        super().__init__(outcomes)
        self.completes = completes

    def produce(self, topic: str, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
        if self.outcomes.get(value) is not None:
            super().produce(topic, value, key, headers, on_delivery)

    def flush(self, timeout: float = 0) -> int:
        super().flush(timeout)
        return 0 if self.completes or self.purged else 3


def test_without_success_reports_a_completed_flush_means_delivered() -> None:
    fake = FailureReportsOnly({b"reject": KafkaError(KafkaError.MSG_SIZE_TOO_LARGE)})
    outcome = KafkaPublisher(fake, 1).publish([_msg(b"ok", b"a"), _msg(b"reject", b"b"), _msg(b"ok2", b"c")])
    assert [m.value for m in outcome.acked] == [b"ok", b"ok2"]
    assert [m.value for m, _ in outcome.rejected] == [b"reject"]
    assert not outcome.unavailable and not fake.purged


def test_without_success_reports_a_timed_out_flush_delivers_nothing_unreported() -> None:
    """The first flush timed out: a message without a report may or may not have arrived, so it is not
    marked SENT (published again later, at worst a duplicate)."""
    fake = FailureReportsOnly({}, completes=False)
    outcome = KafkaPublisher(fake, 0.1).publish([_msg(b"a", b"a"), _msg(b"b", b"b")])
    assert not outcome.acked
    assert [r for _, r in outcome.unavailable] == [NO_REPORT, NO_REPORT]
    assert fake.purged


def test_an_error_report_goes_to_its_message_and_to_every_look_alike() -> None:
    """One callback serves the batch: a report is matched by content. Messages of the same topic, key and
    value cannot be told apart, so an error reaches all of them (sent again, never marked SENT on a guess)."""

    class RefusesOneValue(FakeProducer):
        def produce(self, topic: str, value: bytes, key: bytes, headers: Any, on_delivery: Any) -> None:
            err = KafkaError(KafkaError.MSG_SIZE_TOO_LARGE) if headers == [("id", b"2")] else None
            self.pending.append((on_delivery, err, ReportedMessage(topic, key, value, None)))

    values = [b"a", b"b", b"twin", b"c", b"twin"]
    messages = [OutboundMessage(i, "t", b"k", v, [("id", str(i).encode())]) for i, v in enumerate(values)]
    outcome = KafkaPublisher(RefusesOneValue({}), 1).publish(messages)
    assert [m.ref for m, _ in outcome.rejected] == [2, 4]
    assert [m.ref for m in outcome.acked] == [0, 1, 3]


def test_an_error_report_that_matches_no_message_marks_nothing_delivered() -> None:
    """A report naming no message of the batch: no message without a report counts as delivered."""

    class ReportsAStranger(FailureReportsOnly):
        def flush(self, timeout: float = 0) -> int:
            callback = self.pending[0][0] if self.pending else None
            self.pending.clear()
            if callback is not None:
                callback(KafkaError(KafkaError._MSG_TIMED_OUT), ReportedMessage("other", b"x", b"y", None))
            return 0

    fake = ReportsAStranger({b"b": KafkaError(KafkaError._MSG_TIMED_OUT)})
    outcome = KafkaPublisher(fake, 1).publish([_msg(b"a", b"1"), _msg(b"b", b"2")])
    assert not outcome.acked
    assert [m.value for m, _ in outcome.unavailable] == [b"a", b"b"]
    assert "could not be matched to its message" in outcome.unavailable[0][1]
