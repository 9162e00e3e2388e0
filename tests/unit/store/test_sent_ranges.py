"""The pure parts of the sent-range records: batches of ids as runs, and cutting runs out of a record."""

from __future__ import annotations

import pytest

from outbox_relay.store.sent_ranges import MAX_ROW_ID, id_ranges, without


def test_a_batch_of_consecutive_ids_is_one_range_whatever_its_order() -> None:
    assert id_ranges([3, 1, 2, 4]) == [(1, 4)]
    assert id_ranges([7]) == [(7, 7)]


def test_gaps_split_the_batch_and_duplicates_do_not() -> None:
    assert id_ranges([1, 2, 5, 6, 6, 9]) == [(1, 2), (5, 6), (9, 9)]


@pytest.mark.parametrize("ids", [[], ["a", "b"], [1, "2"], [-1, 0], [MAX_ROW_ID + 1], [1.0, 2.0], [True]])
def test_ids_a_record_cannot_hold_give_none(ids: list[object]) -> None:
    assert id_ranges(ids) is None


@pytest.mark.parametrize(
    ("span", "cut", "left"),
    [
        ((1, 10), [(4, 5)], [(1, 3), (6, 10)]),
        ((1, 10), [(1, 10)], []),
        ((1, 10), [(0, 3), (8, 20)], [(4, 7)]),
        ((5, 6), [(1, 2), (9, 9)], [(5, 6)]),
        ((1, 10), [(2, 2), (4, 4), (10, 10)], [(1, 1), (3, 3), (5, 9)]),
    ],
)
def test_without_leaves_what_the_cut_does_not_cover(
    span: tuple[int, int], cut: list[tuple[int, int]], left: list[tuple[int, int]]
) -> None:
    assert without(span, cut) == left
