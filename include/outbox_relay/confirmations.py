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
from typing import Any

from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import OutboxRelayError
from outbox_relay.kafka.consume import ConsumeLoop, ConsumerLike, commit_offsets
from outbox_relay.kafka.records import HEADER_MESSAGE_ID
from outbox_relay.models import ConfirmationMessage, StatsMixin
from outbox_relay.store.outbox import OutboxStore

log = logging.getLogger(__name__)

MAX_CONFIRMATION_BYTES = 1_000_000
SUCCESS_WORDS = frozenset({"SUCCESS", "CONFIRMED", "OK"})
FAILURE_WORDS = frozenset({"FAILED", "FAILURE", "ERROR"})


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


def parse_confirmation(message: Any) -> ConfirmationMessage:
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
    return ConfirmationMessage(message_id, status in SUCCESS_WORDS, None if error is None else str(error))


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
        self.store = OutboxStore(config)
        self.clock = clock

    def run(self, time_budget_seconds: float, idle_seconds: float = 5.0) -> IngestStats:
        """Stop when every assigned partition reported end-of-partition, after ``idle_seconds`` of silence
        once assigned, or when the budget is spent."""
        stats = IngestStats()
        started = self.clock()
        name = f"service {self.config.service} confirmations"
        loop = ConsumeLoop(
            self.consumer, time_budget_seconds, idle_seconds, self.batch_size, name=name, clock=self.clock
        )
        for messages in loop:
            self._handle(messages, stats)
        stats.stopped_because = loop.stopped_because
        stats.elapsed_seconds = round(self.clock() - started, 3)
        log.info("service %s confirmations: %s", self.config.service, stats.as_dict())
        return stats

    def _handle(self, messages: Sequence[Any], stats: IngestStats) -> None:
        confirmations: list[ConfirmationMessage] = []
        for message in messages:
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
        with self.engine.begin() as conn:
            confirmed, failed, unknown = self.store.apply_confirmations(conn, confirmations)
        stats.batches += 1
        stats.confirmed += confirmed
        stats.failed += failed
        stats.unknown += len(unknown)
        stats.unchanged += len(confirmations) - confirmed - failed - len(unknown)
        if unknown:
            stats.unknown_examples = (stats.unknown_examples + unknown)[:10]
            log.warning("%d confirmations for unknown message ids, e.g. %s", len(unknown), unknown[:5])
        commit_offsets(self.consumer)  # only after the DB commit above
