"""Parsed notifications -> Kafka messages (image topic + dead-letter topic), shared by Lambda and the drain."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

from outbox_examples.image_upload.events import (
    EVENT_TYPE,
    REJECT_EVENT_TYPE,
    ImageUploaded,
    ParsedNotification,
    Rejected,
)
from outbox_relay.kafka.publisher import DeliveryOutcome
from outbox_relay.kafka.records import (
    HEADER_ERROR,
    HEADER_EVENT_TYPE,
    HEADER_MESSAGE_ID,
    HEADER_SERVICE,
    OutboundMessage,
)

log = logging.getLogger(__name__)

SOURCE_NAME = "image-events"
DEFAULT_TOPIC = "images.uploaded"
DEFAULT_REJECT_TOPIC = "images.uploaded.rejected"


@dataclass(frozen=True)
class Topics:
    images: str = DEFAULT_TOPIC
    rejects: str = DEFAULT_REJECT_TOPIC

    @classmethod
    def from_env(cls) -> Topics:
        return cls(
            os.environ.get("IMAGE_EVENTS_TOPIC", DEFAULT_TOPIC),
            os.environ.get("IMAGE_EVENTS_REJECT_TOPIC", DEFAULT_REJECT_TOPIC),
        )


def image_message(ref: int, event: ImageUploaded, topic: str) -> OutboundMessage:
    key = str(event.image_id)
    headers = [
        (HEADER_MESSAGE_ID, event.message_id.encode()),
        (HEADER_EVENT_TYPE, EVENT_TYPE.encode()),
        (HEADER_SERVICE, SOURCE_NAME.encode()),
    ]
    value = json.dumps(event.body(), ensure_ascii=False).encode("utf-8")
    return OutboundMessage(ref, topic, key.encode(), value, headers)


def reject_message(ref: int, reject: Rejected, topic: str, source: str) -> OutboundMessage:
    body = {"where": reject.where, "reason": reject.reason, "source": source, "record": reject.record}
    headers = [
        (HEADER_MESSAGE_ID, reject.message_id.encode()),
        (HEADER_EVENT_TYPE, REJECT_EVENT_TYPE.encode()),
        (HEADER_SERVICE, SOURCE_NAME.encode()),
        (HEADER_ERROR, reject.reason[:1000].encode()),
    ]
    key = None if reject.key is None else reject.key.encode()
    value = json.dumps(body, ensure_ascii=False, default=str).encode("utf-8")
    return OutboundMessage(ref, topic, key, value, headers)


def outbound_messages(parsed: ParsedNotification, topics: Topics, source: str) -> list[OutboundMessage]:
    """Accepted records (in record order) then rejects; also logs what is ignored and rejected."""
    for ignored in parsed.ignored:
        log.info("%s ignored: %s", ignored.where, ignored.reason)
    for reject in parsed.rejected:
        log.warning("%s rejected (to %s): %s", reject.where, topics.rejects, reject.reason)
    accepted = [image_message(ref, e, topics.images) for ref, e in enumerate(parsed.accepted)]
    first = len(accepted)
    return accepted + [
        reject_message(first + n, r, topics.rejects, source) for n, r in enumerate(parsed.rejected)
    ]


class DeliveryIncompleteError(RuntimeError):
    """Kafka did not acknowledge every message of a notification; the notification must be redelivered."""


def unacknowledged(messages: Sequence[OutboundMessage], outcome: DeliveryOutcome) -> list[str]:
    """Reasons for every message of ``messages`` that Kafka did not acknowledge (matched by ``ref``)."""
    acked = {m.ref for m in outcome.acked}
    reasons = {m.ref: reason for m, reason in outcome.rejected + outcome.unavailable}
    held = {m.ref for m in outcome.held}
    problems = []
    for message in messages:
        if message.ref in acked:
            continue
        why = reasons.get(
            message.ref, "held back behind a failed message of its key" if message.ref in held else "?"
        )
        message_id = dict(message.headers)[HEADER_MESSAGE_ID].decode()
        problems.append(f"{message.topic} key={message.key!r} id={message_id}: {why}")
    return problems
