"""Drain an SQS queue that receives a bucket's notifications, publishing each to Kafka.

An SQS message is deleted only after Kafka acknowledged every message made from it (images and
rejects). One that Kafka did not fully acknowledge stays in the queue and comes back after its
visibility timeout; the deterministic message ids make the consumers skip what had already landed.
A notification with nothing to publish (an ``s3:TestEvent``, only ignored records) is deleted and
logged. Keep the queue's visibility timeout above the producer's flush timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from outbox_examples.image_upload.events import ParsedNotification, parse_notification
from outbox_examples.image_upload.publishing import (
    DeliveryIncompleteError,
    Topics,
    outbound_messages,
    unacknowledged,
)
from outbox_relay.kafka.publisher import DeliveryOutcome, KafkaPublisher
from outbox_relay.kafka.records import OutboundMessage
from outbox_relay.models import StatsMixin

log = logging.getLogger(__name__)


@dataclass
class DrainStats(StatsMixin):
    received: int = 0
    deleted: int = 0
    left_for_redelivery: int = 0
    published: int = 0
    rejected: int = 0
    ignored: int = 0
    nothing_to_publish: int = 0
    redelivered: int = 0
    delete_failures: int = 0
    elapsed_seconds: float = 0.0
    stopped_because: str = "drained"


class DrainIncompleteError(DeliveryIncompleteError):
    """Some notifications were left in the queue because Kafka did not acknowledge their messages."""

    def __init__(self, message: str, stats: DrainStats) -> None:
        super().__init__(message)
        self.stats = stats


@dataclass
class _Pending:
    sqs_message: dict[str, Any]
    parsed: ParsedNotification
    outbound: list[OutboundMessage]


class SqsDrain:
    """Receives, publishes and deletes in batches of up to ten notifications."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        publisher: KafkaPublisher,
        topics: Topics,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.publisher = publisher
        self.topics = topics
        self.clock = clock

    def run(self, time_budget_seconds: float, wait_seconds: int = 1, max_messages: int = 10) -> DrainStats:
        """Until the queue answers empty or the budget is spent; raises ``DrainIncompleteError`` (after
        deleting what was acknowledged) when Kafka left any notification unacknowledged."""
        stats = DrainStats()
        started = self.clock()
        while True:
            if self.clock() - started >= time_budget_seconds:
                stats.stopped_because = "time budget"
                break
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=max_messages,
                WaitTimeSeconds=wait_seconds,
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            ).get("Messages", [])
            if not batch:
                break
            if not self.process_batch(batch, stats):
                stats.stopped_because = "kafka did not acknowledge"
                break
        stats.elapsed_seconds = round(self.clock() - started, 3)
        if stats.left_for_redelivery:
            raise DrainIncompleteError(
                f"{stats.left_for_redelivery} notification(s) left in the queue for redelivery: {stats.as_dict()}",
                stats,
            )
        return stats

    def process_batch(self, batch: list[dict[str, Any]], stats: DrainStats) -> bool:
        """Publish the batch's messages in one go, then delete the fully acknowledged notifications."""
        pending = [self._parse(m, stats) for m in batch]
        everything = [o for p in pending for o in p.outbound]
        outcome = self.publisher.publish(everything) if everything else DeliveryOutcome()
        acked = {id(m) for m in outcome.acked}
        done: list[_Pending] = []
        for item in pending:
            missing = [o for o in item.outbound if id(o) not in acked]
            if missing:
                stats.left_for_redelivery += 1
                log.warning(
                    "sqs message %s left for redelivery: %s",
                    item.sqs_message["MessageId"],
                    unacknowledged(item.outbound, outcome)[:3],
                )
                continue
            done.append(item)
            stats.published += len(item.parsed.accepted)
            stats.rejected += len(item.parsed.rejected)
            if not item.outbound:
                stats.nothing_to_publish += 1
                log.info("sqs message %s: nothing to publish, deleted", item.sqs_message["MessageId"])
        self._delete(done, stats)
        return len(done) == len(pending)

    def _parse(self, message: dict[str, Any], stats: DrainStats) -> _Pending:
        stats.received += 1
        source = f"sqs:{message['MessageId']}"
        receives = int(message.get("Attributes", {}).get("ApproximateReceiveCount", "1"))
        if receives > 1:
            stats.redelivered += 1
            log.info("%s received %d times (earlier attempt not deleted)", source, receives)
        parsed = parse_notification(message.get("Body", ""), where=source)
        stats.ignored += len(parsed.ignored)
        return _Pending(message, parsed, outbound_messages(parsed, self.topics, source))

    def _delete(self, done: list[_Pending], stats: DrainStats) -> None:
        if not done:
            return
        entries = [
            {"Id": str(i), "ReceiptHandle": p.sqs_message["ReceiptHandle"]} for i, p in enumerate(done)
        ]
        answer = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
        failed = answer.get("Failed", [])
        if failed:
            # Published but not deleted: they come back and are published again with the same ids (deduped).
            reasons = sorted({str(f.get("Message") or f.get("Code")) for f in failed})
            log.error(
                "sqs delete failed for %d of %d notification(s): %s", len(failed), len(entries), reasons
            )
        stats.delete_failures += len(failed)
        stats.deleted += len(done) - len(failed)
