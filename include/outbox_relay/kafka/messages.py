"""Kept only for the fault tests (tests/faults), which import from here: the outbound message and header
names live in ``outbox_relay.kafka.records``. Delete this module once they import from there."""

from outbox_relay.kafka.records import HEADER_MESSAGE_ID, OutboundMessage

__all__ = ["HEADER_MESSAGE_ID", "OutboundMessage"]
