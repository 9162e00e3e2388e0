"""The fault suite's history checker has its own per-key order check (tests/faults/history.py), apart
from the product's: these cases pin down what it must report."""

from __future__ import annotations

from tests.faults.history import key_order_violations
from tests.integration.kafka_tools import Record

TOPIC = "orders"


def _record(message_id: str, key: str | None, offset: int, partition: int = 0, topic: str = TOPIC) -> Record:
    return Record(topic, partition, offset, key, b"{}", {"outbox-message-id": message_id})


ROW_IDS = {"a1": 1, "b1": 2, "a2": 3, "b2": 4, "a3": 5}


def test_messages_in_row_order_per_key_are_no_violation() -> None:
    records = [_record(m, m[0], offset) for offset, m in enumerate(["a1", "b1", "a2", "b2", "a3"])]
    assert key_order_violations(records, ROW_IDS) == []


def test_a_newer_row_published_before_an_older_one_of_its_key_is_a_violation() -> None:
    # a2 (row 3) reaches the broker before a1 (row 1): a1 is first seen after a newer row of key "a".
    records = [_record(m, m[0], offset) for offset, m in enumerate(["b1", "a2", "a1", "b2", "a3"])]
    assert key_order_violations(records, ROW_IDS) == ["a1"]


def test_order_is_read_from_offsets_not_from_the_order_records_were_listed() -> None:
    records = [_record("a2", "a", 7), _record("a1", "a", 3)]  # listed out of order, offsets in row order
    assert key_order_violations(records, ROW_IDS) == []
    assert key_order_violations([_record("a2", "a", 3), _record("a1", "a", 7)], ROW_IDS) == ["a1"]


def test_a_redelivered_copy_is_a_duplicate_not_a_reordering() -> None:
    # at-least-once: a1 and a2 are published again after a crash; their first appearances are in order.
    records = [_record(m, "a", offset) for offset, m in enumerate(["a1", "a2", "a1", "a2", "a3"])]
    assert key_order_violations(records, ROW_IDS) == []


def test_only_the_first_appearance_counts() -> None:
    # a3 first, then a1 and a2: both older rows are late, although a copy of a3 follows them.
    records = [_record(m, "a", offset) for offset, m in enumerate(["a3", "a1", "a2", "a3"])]
    assert key_order_violations(records, ROW_IDS) == ["a1", "a2"]


def test_other_keys_do_not_order_each_other() -> None:
    records = [_record(m, m[0], offset) for offset, m in enumerate(["b2", "a1", "b1"])]
    assert key_order_violations(records, ROW_IDS) == ["b1"]


def test_a_key_spread_over_two_partitions_is_a_violation() -> None:
    records = [_record("a1", "a", 0, partition=0), _record("a2", "a", 0, partition=1)]
    assert key_order_violations(records, ROW_IDS) == ["a2"]


def test_records_without_a_key_or_of_unknown_messages_are_not_ordered() -> None:
    records = [_record("a2", None, 0), _record("a1", None, 1), _record("zz", "a", 2), _record("a1", "a", 3)]
    assert key_order_violations(records, ROW_IDS) == []
