"""What goes on a topic: the outbound message tuple and the header names every relayed message carries."""

from __future__ import annotations

from typing import NamedTuple

HEADER_MESSAGE_ID = "outbox-message-id"
HEADER_EVENT_TYPE = "outbox-event-type"
HEADER_SERVICE = "outbox-service"
HEADER_SOURCE_TABLE = "outbox-source-table"
HEADER_ROW_ID = "outbox-row-id"
HEADER_REPLAY = "outbox-replay"
HEADER_ERROR = "outbox-error"
HEADER_ORIGINAL_TOPIC = "outbox-original-topic"  # on dead-letter copies: where the row was meant to go

# librdkafka settings every producer of this project needs: an acknowledgement means every in-sync
# replica has the message, and a retried send never duplicates or reorders it on the partition.
PRODUCER_REQUIRED: dict[str, object] = {"enable.idempotence": True, "acks": "all"}
# What the relay's own producers add: a report for failed messages only, since a success report is a
# Python call per message (the publisher takes a message without a report as delivered only once its
# flush completed, see ``kafka.publisher``).
RELAY_PRODUCER: dict[str, object] = {**PRODUCER_REQUIRED, "delivery.report.only.error": True}


class OutboundMessage(NamedTuple):
    """A message ready for ``produce`` (a tuple: built once per row, so it must be cheap).

    ``ref`` is the sender's own handle for the message (the relay uses the row's position in its batch):
    the publisher hands it back in the outcome, so results are matched without the publisher knowing
    what a message was made from."""

    ref: int
    topic: str
    key: bytes | None
    value: bytes
    headers: list[tuple[str, bytes]]
    partition: int | None = None
