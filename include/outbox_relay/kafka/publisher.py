"""Produce a batch to Kafka and report, per message, whether the broker acknowledged it.

Every delivery report is checked. A message with no report by the flush timeout
is purged and counted as undelivered, so nothing is marked SENT without an ack.

The relay's producers report failures only (``delivery.report.only.error``: a success report costs a
Python call per message). So a message without a report counts as acknowledged only once the flush
completed, which is when librdkafka has settled every queued message and served every report; after a
flush that timed out, a message without a report is undelivered (at worst published again later). With
a producer that reports successes too, the result is the same.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from outbox_relay.errors import InfrastructureError
from outbox_relay.kafka.records import OutboundMessage

# Delivery errors that say the cluster (not the message) is the problem: the run
# stops and Airflow retries it later, without spending the rows' attempts.
BROKER_UNAVAILABLE_CODES = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError._DESTROY,
        KafkaError._FATAL,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
    }
)

NO_REPORT = "no delivery report before the flush timeout (message purged)"


class ProducerLike(Protocol):
    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None: ...
    def poll(self, timeout: float = ...) -> int: ...
    def flush(self, timeout: float = ...) -> int: ...
    def purge(self, in_queue: bool = ..., in_flight: bool = ..., blocking: bool = ...) -> None: ...


class BrokerUnavailableError(InfrastructureError):
    """Kafka did not acknowledge messages for cluster-level reasons (down, unreachable, timing out)."""


@dataclass
class DeliveryOutcome:
    """Per-message result of one ``publish`` call, in input order."""

    acked: list[OutboundMessage] = field(default_factory=list)
    rejected: list[tuple[OutboundMessage, str]] = field(default_factory=list)
    unavailable: list[tuple[OutboundMessage, str]] = field(default_factory=list)
    held: list[OutboundMessage] = field(default_factory=list)
    # In a Kafka transaction that was aborted: not delivered, through no fault of their own.
    aborted: list[OutboundMessage] = field(default_factory=list)


def describe(err: Any) -> str:
    if isinstance(err, KafkaError):
        return f"{err.name()}: {err.str()}"
    return str(err)


PENDING = object()  # no delivery report (yet)
HELD = object()  # not produced: an older message of its key was rejected in this batch


def _sent_as(message: OutboundMessage) -> tuple[Any, ...]:
    """What a delivery report's message shows of a queued message: its topic, key and value (an empty key or
    value reads back as None; headers do not come back in delivery reports)."""
    return (message.topic, message.key or b"", message.value or b"")


def _reported_as(msg: Any) -> tuple[Any, ...] | None:
    try:
        return (msg.topic(), msg.key() or b"", msg.value() or b"")
    except AttributeError:  # no message in the report
        return None


class Reports(list[Any]):
    """Each message's delivery report by position: ``PENDING`` (none yet), ``HELD``, or the error.

    One callback serves the whole batch: a callback per message (a ``partial`` holding its position) cost
    about 1 µs of CPU per message in ``produce``, and the relay's producers report errors only. A report
    names its message by content (topic, key and value: delivery reports carry no headers), so ``resolve``
    matches it to its position after the flush. Nothing is marked delivered on a guess: an error report
    that fits several messages of the same content goes to all of them (they are sent again), a success
    report that does only to none, and one that fits no message at all leaves every message still without
    a report undelivered."""

    def __init__(self, size: int) -> None:
        super().__init__([PENDING] * size)
        self.reported: list[tuple[Any, Any]] = []  # (error or None, message), in the order served
        self.touched = False  # True once any position holds something else than PENDING

    def __setitem__(self, index: Any, value: Any) -> None:
        self.touched = True
        super().__setitem__(index, value)

    def on_delivery(self, err: Any, msg: Any) -> None:
        self.reported.append((err, msg))

    def resolve(self, messages: Sequence[OutboundMessage], flushed: bool) -> None:
        """Put each report served so far at its message's position. After a completed flush a message
        without a report was delivered, so only errors need matching then (success reports, from a producer
        that sends them, matter only after a flush that timed out)."""
        served = [(err, msg) for err, msg in self.reported if err is not None or not flushed]
        self.reported.clear()
        if not served:
            return
        waiting: dict[tuple[Any, ...], list[int]] = {}
        for index, message in enumerate(messages):
            if self[index] is PENDING:
                waiting.setdefault(_sent_as(message), []).append(index)
        unmatched = []
        for err, msg in served:
            positions = waiting.get(_reported_as(msg) or ())
            if positions is None:
                if err is not None:
                    unmatched.append(err)
            elif len(positions) == 1 or err is not None:
                for index in positions:
                    self[index] = err
                positions.clear()
        if unmatched:
            lost = KafkaError(
                KafkaError._MSG_TIMED_OUT,
                f"a delivery error could not be matched to its message ({describe(unmatched[0])})",
            )
            self[:] = [lost if report is PENDING else report for report in self]


def classify(outcome: DeliveryOutcome, message: OutboundMessage, report: Any, flushed: bool) -> None:
    if report is None or (report is PENDING and flushed):
        outcome.acked.append(message)
    elif report is HELD:
        outcome.held.append(message)
    elif report is PENDING:
        outcome.unavailable.append((message, NO_REPORT))
    elif isinstance(report, KafkaError) and report.code() in BROKER_UNAVAILABLE_CODES:
        outcome.unavailable.append((message, describe(report)))
    elif isinstance(report, KafkaError) and report.code() == KafkaError._UNKNOWN_PARTITION:
        where = f"partition {message.partition} of topic {message.topic!r}"
        outcome.rejected.append((message, f"{where} does not exist ({describe(report)})"))
    else:
        outcome.rejected.append((message, describe(report)))


class KafkaPublisher:
    """Sends batches through one long-lived producer (idempotent, acks=all)."""

    def __init__(self, producer: ProducerLike, flush_timeout_seconds: float) -> None:
        self.producer = producer
        self.flush_timeout_seconds = flush_timeout_seconds

    def publish(self, messages: Sequence[OutboundMessage]) -> DeliveryOutcome:
        reports = self._produce(messages)
        flushed = self._flush_or_purge()
        reports.resolve(messages, flushed)
        if flushed and not reports.touched:  # the usual batch: no report at all, every message delivered
            return DeliveryOutcome(acked=list(messages))
        outcome = DeliveryOutcome()
        for message, report in zip(messages, reports, strict=True):
            classify(outcome, message, report, flushed)
        return outcome

    def _produce(self, messages: Sequence[OutboundMessage]) -> Reports:
        """Queue every message (an older message of a key refused here holds the key's later ones); each
        message's report so far (``resolve`` adds the delivery errors once the flush served them)."""
        reports = Reports(len(messages))
        produce, callback = self.producer.produce, reports.on_delivery
        rejected_keys: set[bytes] = set()
        for index, message in enumerate(messages):
            _ref, topic, key, value, headers, partition = message
            if rejected_keys and key in rejected_keys:
                reports[index] = HELD  # an older message of this key was just rejected: keep per-key order
                continue
            try:
                if partition is None:  # the usual case, inlined: this loop runs once per message
                    produce(topic, value, key, headers=headers, on_delivery=callback)
                else:
                    self._send(message, callback)
            except (BufferError, KafkaException, TypeError, ValueError) as exc:
                reports[index] = self._produce_slowly(message, callback, exc)
                if reports[index] is not PENDING and key is not None:
                    rejected_keys.add(key)
        return reports

    def _send(self, message: OutboundMessage, callback: Any) -> None:
        if message.partition is None:
            self.producer.produce(
                message.topic, message.value, message.key, headers=message.headers, on_delivery=callback
            )
        else:
            self.producer.produce(
                message.topic,
                message.value,
                message.key,
                partition=message.partition,
                headers=message.headers,
                on_delivery=callback,
            )

    def _produce_slowly(self, message: OutboundMessage, callback: Any, error: Exception) -> Any:
        """The first ``produce`` raised. A full local queue is waited out (serving delivery reports frees
        it); anything else is the client refusing the message (too large, bad topic...): that error is the
        message's report. Returns the report so far (``PENDING`` once the message is queued)."""
        while isinstance(error, BufferError):
            self.producer.poll(0.05)
            try:
                self._send(message, callback)
                return PENDING
            except (BufferError, KafkaException, TypeError, ValueError) as exc:
                error = exc
        if isinstance(error, KafkaException) and error.args:
            return error.args[0]
        return error

    def _flush_or_purge(self) -> bool:
        """Wait for every report; True when the first flush completed (nothing left queued, in flight or
        unreported), so that a message without a report was delivered."""
        deadline = time.monotonic() + self.flush_timeout_seconds
        remaining = self.producer.flush(self.flush_timeout_seconds)
        if remaining:
            # Give up on what is still queued or in flight; their reports (purged) arrive on the next poll.
            self.producer.purge(in_queue=True, in_flight=True, blocking=False)
            self.producer.flush(max(0.0, min(1.0, deadline - time.monotonic())) or 0.5)
        return remaining == 0
