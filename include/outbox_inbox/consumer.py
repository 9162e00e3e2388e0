"""The consumer side: an idempotent consumer with an inbox table.

For each message, ONE database transaction records the message id in the inbox
and runs the business handler; a redelivered id is skipped (its stored result is
answered again). A handler exception rolls back the business change, is
recorded as FAILED with its error and answered as FAILED: never swallowed.
Offsets are committed only after the DB commit and the acknowledged answers,
so a crash between receiving and processing means the message is processed
after restart.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import Connection, Engine

from outbox_relay.database import InboxTable, truncate_error
from outbox_relay.errors import ConfigurationError, InfrastructureError
from outbox_relay.kafka.consume import ConsumeLoop, commit_offsets
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.kafka.records import HEADER_MESSAGE_ID, OutboundMessage
from outbox_relay.models import StatsMixin

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InboundMessage:
    message_id: str
    key: str | None
    topic: str
    partition: int
    offset: int
    value: bytes
    headers: dict[str, str]

    def json(self) -> Any:
        return json.loads(self.value)


Handler = Callable[[Connection, InboundMessage], None]


@dataclass
class ConsumeStats(StatsMixin):
    received: int = 0
    processed: int = 0
    failed: int = 0
    duplicates: int = 0
    malformed: int = 0
    elapsed_seconds: float = 0.0
    errors: list[str] = field(default_factory=list)


def to_inbound(message: Any) -> InboundMessage | None:
    headers = {k: bytes(v).decode("utf-8", "replace") for k, v in (message.headers() or []) if v is not None}
    message_id = headers.get(HEADER_MESSAGE_ID)
    if not message_id:
        return None
    key = message.key()
    return InboundMessage(
        message_id=message_id,
        key=None if key is None else bytes(key).decode("utf-8", "replace"),
        topic=message.topic(),
        partition=message.partition(),
        offset=message.offset(),
        value=message.value() or b"",
        headers=headers,
    )


class IdempotentConsumer:
    """Consumes relayed messages once per message id and answers on the result topic."""

    def __init__(
        self,
        name: str,
        engine: Engine,
        consumer: Any,
        results: KafkaPublisher,
        result_topic: str,
        handler: Handler,
        inbox_table: str = "inbox_message",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.engine = engine
        self.consumer = consumer
        self.results = results
        self.result_topic = result_topic
        self.handler = handler
        self.inbox = InboxTable(name, inbox_table)
        self.clock = clock

    def run(
        self,
        time_budget_seconds: float,
        idle_seconds: float = 3.0,
        batch_size: int = 500,
        stop_at_end: bool = False,
    ) -> ConsumeStats:
        """Consume until silence or the budget; with ``stop_at_end`` (a consumer with
        ``enable.partition.eof``) also once every assigned partition is read to its end."""
        stats = ConsumeStats()
        started = self.clock()
        loop = ConsumeLoop(
            self.consumer,
            time_budget_seconds,
            idle_seconds,
            batch_size,
            stop_at_end=stop_at_end,
            name=self.name,
            clock=self.clock,
        )
        for messages in loop:
            self.process_batch(messages, stats)
        stats.elapsed_seconds = round(self.clock() - started, 3)
        return stats

    def process_batch(self, messages: list[Any], stats: ConsumeStats) -> None:
        answers: list[OutboundMessage] = []
        for raw in messages:
            stats.received += 1
            message = to_inbound(raw)
            if message is None:
                stats.malformed += 1
                log.error(
                    "consumer %s: message %s[%s]@%s has no %s header; cannot dedupe, skipped",
                    self.name,
                    raw.topic(),
                    raw.partition(),
                    raw.offset(),
                    HEADER_MESSAGE_ID,
                )
                continue
            status, error = self._process_one(message, stats)
            answers.append(self._answer(len(answers), message, status, error))
        outcome = self.results.publish(answers)
        if len(outcome.acked) != len(answers):
            problems = [reason for _m, reason in outcome.rejected + outcome.unavailable]
            raise InfrastructureError(
                f"consumer {self.name}: {len(answers) - len(outcome.acked)} results not acknowledged "
                f"({problems[:3]}); offsets not committed, the batch will be processed again (deduped)"
            )
        commit_offsets(self.consumer)

    def _process_one(self, message: InboundMessage, stats: ConsumeStats) -> tuple[str, str | None]:
        with self.engine.connect() as conn, conn.begin():
            if not self.inbox.record_receipt(
                conn, message.message_id, message.topic, message.partition, message.offset
            ):
                stats.duplicates += 1
                self.inbox.record_duplicate(conn, message.message_id)
                return self.inbox.stored_result(conn, message.message_id)
            status, error = self._run_handler(conn, message, stats)
            self.inbox.record_result(conn, message.message_id, status, error)
        return status, error

    def _run_handler(
        self, conn: Connection, message: InboundMessage, stats: ConsumeStats
    ) -> tuple[str, str | None]:
        savepoint = conn.begin_nested()
        try:
            self.handler(conn, message)
        except Exception as exc:  # the handler's failure is data: recorded and answered, not swallowed
            savepoint.rollback()
            error = truncate_error(f"{type(exc).__name__}: {exc}")
            log.warning(
                "consumer %s: handler failed for message %s: %s", self.name, message.message_id, error
            )
            log.debug("handler traceback", exc_info=True)
            stats.failed += 1
            stats.errors = [*stats.errors, error][:10]
            return "FAILED", error
        savepoint.commit()
        stats.processed += 1
        return "SUCCESS", None

    def _answer(self, ref: int, message: InboundMessage, status: str, error: str | None) -> OutboundMessage:
        body = {
            "message_id": message.message_id,
            "status": status,
            "error": error,
            "consumer": self.name,
            "processed_at": datetime.now(timezone.utc).isoformat(),
        }
        headers = [(HEADER_MESSAGE_ID, message.message_id.encode())]
        key = message.message_id.encode()
        return OutboundMessage(ref, self.result_topic, key, json.dumps(body).encode(), headers)


def purge_inbox(
    engine: Engine,
    consumer: str,
    older_than_days: float,
    inbox_table: str = "inbox_message",
    chunk: int = 1000,
) -> int:
    """Delete a consumer's inbox rows older than the broker's retention: a message that old can no
    longer be redelivered, so its dedupe record is no longer needed. Chunked by primary key."""
    if older_than_days <= 0:
        raise ConfigurationError(f"older_than_days must be positive, got {older_than_days}")
    return InboxTable(consumer, inbox_table).purge(engine, older_than_days, chunk)
