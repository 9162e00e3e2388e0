"""Per-key order as the audit judges it, on records built by hand."""

from __future__ import annotations

from outbox_relay.audit import order_violations
from outbox_relay.kafka.readback import TopicRecord
from outbox_relay.kafka.records import HEADER_MESSAGE_ID


def _record(offset: int, message_id: str, key: bytes | None = b"k", partition: int = 0) -> TopicRecord:
    return TopicRecord("t", partition, offset, key, {HEADER_MESSAGE_ID: message_id})


def test_a_newer_message_first_seen_before_an_older_one_of_its_key_is_a_violation() -> None:
    rank = {"m1": 0, "m2": 1, "m3": 2}
    assert order_violations([_record(0, "m1"), _record(1, "m2"), _record(2, "m3")], rank) == []
    assert order_violations([_record(0, "m2"), _record(1, "m1"), _record(2, "m3")], rank) == ["m1"]


def test_a_republished_message_seen_again_later_is_a_duplicate_not_a_reordering() -> None:
    rank = {"m1": 0, "m2": 1}
    records = [_record(0, "m1"), _record(1, "m2"), _record(2, "m1")]
    assert order_violations(records, rank) == []


def test_messages_without_a_key_have_no_order_to_keep() -> None:
    rank = {"m1": 0, "m2": 1}
    assert order_violations([_record(0, "m2", key=None), _record(1, "m1", key=None)], rank) == []


def test_a_key_spread_over_partitions_has_no_order() -> None:
    rank = {"m1": 0, "m2": 1}
    assert order_violations([_record(0, "m1", partition=0), _record(0, "m2", partition=1)], rank) == ["m2"]
