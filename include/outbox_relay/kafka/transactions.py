"""A batch as one Kafka transaction: its messages and its progress record become visible to read-committed
consumers together, or not at all.

The producer's ``transactional.id`` is stable per service and shard, so starting a relay fences every older
producer with that id (a zombie relay's open transaction is aborted, its next commit refused). A message
refused by the broker dooms the whole transaction: it is aborted, and the outcome names the refused
messages (``rejected``) apart from the others (``aborted``), which the relay may send again without them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from outbox_relay.errors import ConfigurationError, InfrastructureError, MisuseError
from outbox_relay.kafka.publisher import (
    HELD,
    PENDING,
    BrokerUnavailableError,
    DeliveryOutcome,
    KafkaPublisher,
    ProducerLike,
    classify,
    describe,
)
from outbox_relay.kafka.records import OutboundMessage

log = logging.getLogger(__name__)

FENCED_CODES = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH})
# init_transactions answers that say the broker has no transactions at all (not that it is down).
UNSUPPORTED_CODES = frozenset(
    {
        KafkaError._UNSUPPORTED_FEATURE,
        KafkaError.UNSUPPORTED_VERSION,
        KafkaError.INVALID_REQUEST,
        KafkaError.UNSUPPORTED_FOR_MESSAGE_FORMAT,
        KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    }
)
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})


class TransactionalProducerLike(ProducerLike, Protocol):
    def init_transactions(self, timeout: float = ...) -> None: ...
    def begin_transaction(self) -> None: ...
    def commit_transaction(self, timeout: float = ...) -> None: ...
    def abort_transaction(self, timeout: float = ...) -> None: ...


class RelayFencedError(InfrastructureError):
    """A newer relay with the same transactional id started: this one's Kafka transaction was aborted and
    its database transaction rolls back; the newer relay carries on with the rows."""


class TransactionsUnavailableError(ConfigurationError):
    """The broker does not offer Kafka transactions, which ``delivery: exactly_once`` needs."""


class TransactionalPublisher(KafkaPublisher):
    """Sends each batch as one transaction of a producer with a stable ``transactional.id``."""

    producer: TransactionalProducerLike

    def __init__(
        self, producer: TransactionalProducerLike, flush_timeout_seconds: float, transactional_id: str
    ) -> None:
        super().__init__(producer, flush_timeout_seconds)
        self.transactional_id = transactional_id
        self.started = False
        self.commit_seconds = 0.0  # waiting for commits (flush included), all transactions together

    def start(self) -> None:
        """Register the transactional id with the broker, which fences every older producer with it (an
        open transaction of theirs is aborted first). Once per producer: the chunks of a backfill are runs
        of one relay, and its producer stays registered between them."""
        if self.started:
            return
        try:
            self.producer.init_transactions(self.flush_timeout_seconds)
        except KafkaException as exc:
            error = exc.args[0]
            if error.code() in UNSUPPORTED_CODES:
                raise TransactionsUnavailableError(
                    f"the broker refused Kafka transactions ({describe(error)}) for transactional id "
                    f"{self.transactional_id!r}: delivery: exactly_once needs a broker with transactions "
                    "(Apache Kafka 0.11 or later, with transaction.state.log settings its cluster can meet); "
                    "set delivery: at_least_once for this broker"
                ) from None
            raise BrokerUnavailableError(
                f"could not start Kafka transactions for {self.transactional_id!r} within "
                f"{self.flush_timeout_seconds:g}s ({describe(error)}); is the broker (and its transaction "
                "coordinator) reachable?"
            ) from None
        self.started = True

    def abort_probe(self, probe: OutboundMessage) -> None:
        """Write ``probe`` in a transaction and abort it: a read-committed reader must never see it (a broker
        that shows it anyway cannot give exactly-once delivery, see ``ExactlyOnce.begin``)."""
        self._call(self.producer.begin_transaction)
        self._produce_own(probe, "probe")
        self._call(lambda: self.producer.flush(self.flush_timeout_seconds))
        self._call(lambda: self.producer.abort_transaction(self.flush_timeout_seconds))

    def publish(self, messages: Sequence[OutboundMessage]) -> DeliveryOutcome:
        raise MisuseError(
            f"producer {self.transactional_id!r} is transactional: send batches with publish_transaction"
        )

    def publish_transaction(
        self, messages: Sequence[OutboundMessage], progress: OutboundMessage
    ) -> DeliveryOutcome:
        """``messages`` and the ``progress`` record in one transaction. Committed: every message queued is
        acknowledged. Aborted: the refused messages are ``rejected``, the others ``aborted`` (or, when the
        broker itself failed, ``unavailable``). Raises ``RelayFencedError`` when a newer relay took over."""
        self._call(self.producer.begin_transaction)
        reports = self._produce(messages)
        self._produce_own(progress, "progress")
        failure = self._commit()
        reports.resolve(messages, flushed=True)
        outcome = DeliveryOutcome()
        for message, report in zip(messages, reports, strict=True):
            if failure is None or report is HELD:
                classify(outcome, message, report, flushed=True)
            elif report is PENDING or (isinstance(report, KafkaError) and report.code() in _PURGED):
                outcome.aborted.append(message)
            else:
                classify(outcome, message, report, flushed=False)
        if failure is not None and not outcome.rejected:
            outcome.unavailable += [(m, f"Kafka transaction aborted: {failure}") for m in outcome.aborted]
            outcome.aborted = []
        return outcome

    def _produce_own(self, record: OutboundMessage, what: str) -> None:
        """Queue one of the relay's own records in the open transaction; one the client refuses aborts it."""
        report = self._produce([record])[0]
        if report is not PENDING:
            self._abort(f"{what} record refused ({describe(report)})")
            raise InfrastructureError(
                f"the {what} record of {self.transactional_id!r} was refused: {describe(report)}"
            )

    def _commit(self) -> str | None:
        """Commit (flushing first); on failure abort, and say why (None: committed). A commit that timed
        out is tried once more, as librdkafka allows."""
        error = self._try_commit()
        if error is not None and error.retriable():
            error = self._try_commit()
        if error is None:
            return None
        reason = describe(error)
        self._abort(reason)
        return reason

    def _try_commit(self) -> Any:
        started = time.perf_counter()
        try:
            self.producer.commit_transaction(self.flush_timeout_seconds)
        except KafkaException as exc:
            self._raise_if_fenced(exc.args[0])
            return exc.args[0]
        finally:
            self.commit_seconds += time.perf_counter() - started
        return None

    def _abort(self, reason: str) -> None:
        log.warning("Kafka transaction of %s aborted: %s", self.transactional_id, reason)
        self._call(lambda: self.producer.abort_transaction(self.flush_timeout_seconds))

    def _call(self, step: Any) -> None:
        try:
            step()
        except KafkaException as exc:
            self._raise_if_fenced(exc.args[0])
            raise BrokerUnavailableError(
                f"Kafka transaction of {self.transactional_id!r}: {describe(exc.args[0])}"
            ) from None

    def _raise_if_fenced(self, error: Any) -> None:
        """A fenced producer (or one in any other fatal state) can never send again: the run ends."""
        if not isinstance(error, KafkaError):
            return
        if error.code() in FENCED_CODES:
            log.error(
                "producer %s was fenced: a newer relay with the same transactional id started, so this "
                "relay's Kafka transaction is aborted and its database transaction rolls back (%s)",
                self.transactional_id,
                describe(error),
            )
            raise RelayFencedError(
                f"relay producer {self.transactional_id!r} was fenced by a newer relay with the same "
                f"transactional id ({describe(error)}): this relay's batch was aborted in Kafka and its "
                "database transaction rolled back; the newer relay carries on with the rows"
            )
        if error.fatal():
            raise BrokerUnavailableError(
                f"relay producer {self.transactional_id!r} hit a fatal error ({describe(error)}); its open "
                "transaction is aborted by the broker and the next run starts a new producer"
            )
