"""Ingest a result topic into outbox status updates (SENT -> CONFIRMED / FAILED).

Offsets are committed only after the database transaction that applied them,
so a crash re-reads a batch; applying it again is harmless because terminal
states are never overwritten. Malformed messages are counted, logged and skipped
past, so one bad message cannot wedge the topic.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException
from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import OutboxRelayError
from outbox_relay.models import Confirmation, StatsMixin
from outbox_relay.publisher import HEADER_MESSAGE_ID
from outbox_relay.repository import OutboxRepository

log = logging.getLogger(__name__)

MAX_CONFIRMATION_BYTES = 1_000_000
SUCCESS_WORDS = frozenset({"SUCCESS", "CONFIRMED", "OK"})
FAILURE_WORDS = frozenset({"FAILED", "FAILURE", "ERROR"})


class ConsumerLike(Protocol):
    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Any]: ...
    def commit(self, *args: Any, **kwargs: Any) -> Any: ...
    def assignment(self) -> list[Any]: ...


class MalformedConfirmationError(OutboxRelayError, ValueError):
    """A result-topic message that cannot be understood."""


@dataclass
class IngestStats(StatsMixin):
    messages: int = 0
    confirmed: int = 0
    failed: int = 0
    unchanged: int = 0
    unknown: int = 0
    malformed: int = 0
    batches: int = 0
    elapsed_seconds: float = 0.0
    stopped_because: str = "caught up"
    unknown_examples: list[str] = field(default_factory=list)


def _header(message: Any, name: str) -> str | None:
    for key, value in message.headers() or []:
        if key == name and value is not None:
            return bytes(value).decode("utf-8", "replace")
    return None


def parse_confirmation(message: Any) -> Confirmation:
    """Decode one result message: JSON ``{"message_id", "status": SUCCESS|FAILED, "error"}``."""
    value = message.value()
    if value is None:
        raise MalformedConfirmationError("empty message (no value)")
    if len(value) > MAX_CONFIRMATION_BYTES:
        raise MalformedConfirmationError(f"message of {len(value)} bytes exceeds {MAX_CONFIRMATION_BYTES}")
    try:
        document = json.loads(value.decode("utf-8"))
    except UnicodeDecodeError:
        raise MalformedConfirmationError("value is not UTF-8") from None
    except ValueError as exc:
        raise MalformedConfirmationError(f"value is not JSON ({exc})") from None
    if not isinstance(document, dict):
        raise MalformedConfirmationError(f"expected a JSON object, got {type(document).__name__}")
    message_id = document.get("message_id") or _header(message, HEADER_MESSAGE_ID)
    if not isinstance(message_id, str) or not message_id:
        raise MalformedConfirmationError("no 'message_id' in the body or the outbox-message-id header")
    status = str(document.get("status", "")).upper()
    if status not in SUCCESS_WORDS | FAILURE_WORDS:
        raise MalformedConfirmationError(
            f"'status' must be SUCCESS or FAILED, got {document.get('status')!r}"
        )
    error = document.get("error")
    return Confirmation(message_id, status in SUCCESS_WORDS, None if error is None else str(error))


class ConfirmationIngester:
    """Consumes one service's result topic until caught up or out of time."""

    def __init__(
        self,
        config: ServiceConfig,
        engine: Engine,
        consumer: ConsumerLike,
        batch_size: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.engine = engine
        self.consumer = consumer
        self.batch_size = batch_size
        self.repo = OutboxRepository(config)
        self.clock = clock

    def run(self, time_budget_seconds: float, idle_seconds: float = 5.0) -> IngestStats:
        """Stop when every assigned partition reported end-of-partition, after ``idle_seconds`` of silence
        once assigned, or when the budget is spent."""
        stats = IngestStats()
        started = self.clock()
        at_end: dict[tuple[str, int], bool] = {}
        last_activity = started
        while True:
            now = self.clock()
            if now - started >= time_budget_seconds:
                stats.stopped_because = "time budget spent"
                break
            assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
            if assigned and all(at_end.get(tp) for tp in assigned):
                break
            if assigned and now - last_activity >= idle_seconds:
                stats.stopped_because = f"no messages for {idle_seconds:g}s"
                break
            messages = self.consumer.consume(self.batch_size, timeout=0.5)
            if not assigned:
                last_activity = self.clock()  # still joining the group
            if messages:
                last_activity = self.clock()
                self._handle(messages, at_end, stats)
        stats.elapsed_seconds = round(self.clock() - started, 3)
        log.info("service %s confirmations: %s", self.config.service, stats.as_dict())
        return stats

    def _handle(
        self, messages: Sequence[Any], at_end: dict[tuple[str, int], bool], stats: IngestStats
    ) -> None:
        confirmations: list[Confirmation] = []
        data_seen = False
        for message in messages:
            err = message.error()
            if err is not None:
                if err.code() == KafkaError._PARTITION_EOF:
                    at_end[(message.topic(), message.partition())] = True
                    continue
                if err.fatal():
                    raise RuntimeError(f"Kafka consumer failed: {err.name()}: {err.str()}")
                log.warning("consumer error on %s: %s", self.config.confirmation, err.str())
                continue
            data_seen = True
            at_end[(message.topic(), message.partition())] = False
            stats.messages += 1
            try:
                confirmations.append(parse_confirmation(message))
            except MalformedConfirmationError as exc:
                stats.malformed += 1
                log.warning(
                    "skipping malformed confirmation at %s[%s]@%s: %s",
                    message.topic(),
                    message.partition(),
                    message.offset(),
                    exc,
                )
        if not data_seen:
            return
        with self.engine.begin() as conn:
            confirmed, failed, unknown = self.repo.apply_confirmations(conn, confirmations)
        stats.batches += 1
        stats.confirmed += confirmed
        stats.failed += failed
        stats.unknown += len(unknown)
        stats.unchanged += len(confirmations) - confirmed - failed - len(unknown)
        if unknown:
            stats.unknown_examples = (stats.unknown_examples + unknown)[:10]
            log.warning("%d confirmations for unknown message ids, e.g. %s", len(unknown), unknown[:5])
        try:
            self.consumer.commit(asynchronous=False)  # only after the DB commit above
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError._NO_OFFSET:
                raise
