"""Row -> Kafka message: what the relay refuses to send and why (poison rows), without a broker."""

from __future__ import annotations

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import PoisonRowError
from outbox_relay.kafka.records import HEADER_MESSAGE_ID
from outbox_relay.models import OutboxRow
from outbox_relay.relay.messages import MessageBuilder
from outbox_relay.store.table import OutboxTable


def _row(**fields: object) -> OutboxRow:
    values: dict[str, object] = {
        "row_id": 7, "message_id": "m-7", "key": "k", "event_type": "E", "topic": "orders",
        "body": '{"a": 1}', "extra_headers": None, "status": "NEW", **fields,
    }  # fmt: skip
    return OutboxRow(**values)  # type: ignore[arg-type]


def test_a_row_becomes_a_message_with_its_ref_and_headers() -> None:
    message = MessageBuilder(ServiceConfig.model_validate({"service": "s", "topic": "orders"})).message(
        3, _row(), replay=False
    )
    assert message.ref == 3 and message.topic == "orders" and message.key == b"k"
    assert dict(message.headers)[HEADER_MESSAGE_ID] == b"m-7"


def test_a_null_stored_message_id_is_a_poison_row_not_the_text_none() -> None:
    """Consumers dedupe on the message id: 'None' for every such row would make them drop all but one."""
    config = ServiceConfig.model_validate({"service": "s", "topic": "orders"})
    assert OutboxTable(config).message_id_for(7, None) == ""
    with pytest.raises(PoisonRowError, match="message id column 'message_id' is NULL"):
        MessageBuilder(config).message(0, _row(message_id=""), replay=False)
