"""The relay's garbage-collection pacing: raised while any relay runs, put back after the last."""

from __future__ import annotations

import gc

from outbox_relay.relay.collections_pace import MIN_THRESHOLD, fewer_collections


def test_the_threshold_is_raised_for_the_run_and_put_back_after_the_last_of_two() -> None:
    before = gc.get_threshold()
    with fewer_collections(5000):
        assert gc.get_threshold() == (max(before[0], MIN_THRESHOLD, 50_000), *before[1:])
        with fewer_collections(100):  # a second relay in the same process
            assert gc.get_threshold()[0] == max(before[0], 50_000)
        assert gc.get_threshold()[0] == max(before[0], 50_000)  # the first is still running
    assert gc.get_threshold() == before


def test_the_threshold_is_put_back_when_the_run_fails() -> None:
    before = gc.get_threshold()
    try:
        with fewer_collections(10):
            raise RuntimeError("the run failed")
    except RuntimeError:
        pass
    assert gc.get_threshold() == before
