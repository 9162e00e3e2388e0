"""AWS Lambda entry point (handler ``outbox_examples.image_upload.lambda_handler.lambda_handler``).

The bucket invokes the function with its notification. One producer lives at module level and is
reused by every invocation of a warm container (the original built a producer per call and never
flushed it, so a frozen container could lose what it had queued). Each invocation publishes and
waits for Kafka's acknowledgements before returning; if any is missing it raises, so Lambda's retry
of the asynchronous invocation redelivers the notification, and the deterministic message ids make
the consumers drop what had already landed.

Settings: ``OUTBOX_KAFKA_BOOTSTRAP``, ``IMAGE_EVENTS_TOPIC``, ``IMAGE_EVENTS_REJECT_TOPIC``,
``IMAGE_EVENTS_FLUSH_TIMEOUT_SECONDS`` (default 20), ``IMAGE_EVENTS_KAFKA_CONFIG`` (JSON of extra
librdkafka settings: TLS, SASL...).
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any

from confluent_kafka import Producer

from outbox_examples.image_upload.events import parse_notification
from outbox_examples.image_upload.publishing import (
    DeliveryIncompleteError,
    Topics,
    outbound_messages,
    unacknowledged,
)
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.kafka.records import PRODUCER_REQUIRED

log = logging.getLogger(__name__)

_publisher: KafkaPublisher | None = None


def producer_config() -> dict[str, Any]:
    extra = json.loads(os.environ.get("IMAGE_EVENTS_KAFKA_CONFIG", "{}"))
    if not isinstance(extra, dict):
        raise ValueError("IMAGE_EVENTS_KAFKA_CONFIG must be a JSON object of librdkafka settings")
    return {
        "bootstrap.servers": os.environ.get("OUTBOX_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
        "linger.ms": 5,
        "message.timeout.ms": 15000,
        **extra,
        **PRODUCER_REQUIRED,
    }


def publisher() -> KafkaPublisher:
    """The container's one publisher, created on first use (cold start) and reused afterwards."""
    global _publisher
    if _publisher is None:
        timeout = float(os.environ.get("IMAGE_EVENTS_FLUSH_TIMEOUT_SECONDS", "20"))
        _publisher = KafkaPublisher(Producer(producer_config()), timeout)
    return _publisher


def lambda_handler(event: dict[str, Any], context: Any = None) -> dict[str, Any]:
    request_id = getattr(context, "aws_request_id", "local")
    source = f"lambda:{request_id}"
    parsed = parse_notification(event, where="event")
    messages = outbound_messages(parsed, Topics.from_env(), source)
    outcome = publisher().publish(messages)  # flushes: returns only once every message is settled
    problems = unacknowledged(messages, outcome)
    if problems:
        raise DeliveryIncompleteError(
            f"{source}: {len(problems)} of {len(messages)} messages not acknowledged, the invocation "
            f"fails so the notification is retried: {problems[:3]}"
        )
    summary = {
        "published": len(parsed.accepted),
        "rejected": len(parsed.rejected),
        "ignored": len(parsed.ignored),
    }
    log.info("%s: %s", source, summary)
    return {"statusCode": 200, "body": json.dumps(summary)}
