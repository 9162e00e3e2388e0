"""Progress records: the compact, exact form of a batch's rows, and records that cannot be read."""

from __future__ import annotations

import json

import pytest

from outbox_relay.kafka.progress import (
    BatchRecord,
    ProgressRecord,
    ProgressRecordError,
    decode_ids,
    encode_ids,
)
from outbox_relay.models import HistoryEntry


def test_integer_ids_become_ranges_of_consecutive_values() -> None:
    ids = [5, 1, 2, 3, 9, 10, 7, 3]
    assert encode_ids(ids) == {"ranges": [[1, 3], [5, 5], [7, 7], [9, 10]]}
    assert decode_ids(encode_ids(ids)) == [1, 2, 3, 5, 7, 9, 10]
    assert len(json.dumps(encode_ids(list(range(1, 2001))))) < 30  # a 2,000-row batch in a few bytes


def test_other_ids_keep_their_values() -> None:
    assert decode_ids(encode_ids(["b7c1", "a0"])) == ["b7c1", "a0"]
    assert decode_ids(encode_ids([b"\x00\x01", b"\xff"])) == [b"\x00\x01", b"\xff"]
    assert decode_ids(encode_ids([])) == []


def test_a_record_carries_its_batches_dead_letters_and_history_exactly() -> None:
    batches = (
        BatchRecord(7, "scheduled__1", (1, 2, 3), ((4, "payload is NULL"),)),
        BatchRecord(8, "manual__2", (10, 11), (), HistoryEntry("alice", "resend", "manual__2")),
    )
    record = ProgressRecord("outbox-relay.orders.all", 8, "outbox-relay.orders.all", batches)
    assert ProgressRecord.decode(record.key, record.encode(), "here") == record


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"not json", "JSONDecodeError"),
        (b'{"v": 2, "seq": 1}', "format version 2"),
        (b'{"v": 1}', "KeyError"),
    ],
)
def test_an_unreadable_record_stops_the_relay_naming_where_it_is(value: bytes, why: str) -> None:
    with pytest.raises(
        ProgressRecordError, match=f"key 'k' at offset 12 cannot be read .*{why}.*stops instead"
    ):
        ProgressRecord.decode("k", value, "offset 12")
