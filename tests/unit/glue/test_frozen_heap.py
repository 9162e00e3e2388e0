"""The relay-sized task bodies run with the task process's existing heap frozen, so the collector's full
collections walk only what the run allocates (plugins/outbox_relay_airflow/heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from typing import Any

import pytest

from outbox_relay_airflow import backfill_tasks, replay_tasks, tasks
from outbox_relay_airflow.heap import frozen_heap


def test_the_heap_is_frozen_during_the_call_and_thawed_after_it() -> None:
    assert gc.get_freeze_count() == 0
    seen: list[int] = []

    @frozen_heap
    def body() -> str:
        seen.append(gc.get_freeze_count())
        return "done"

    assert body() == "done"
    assert seen[0] > 1000  # every object of this test process that existed before the call
    assert gc.get_freeze_count() == 0


def test_a_nested_call_leaves_the_heap_frozen_until_the_outermost_ends_even_on_error() -> None:
    inner_after: list[int] = []

    @frozen_heap
    def inner() -> None:
        raise ValueError("boom")

    @frozen_heap
    def outer() -> None:
        with pytest.raises(ValueError):
            inner()
        inner_after.append(gc.get_freeze_count())
        raise RuntimeError("outer fails too")

    with pytest.raises(RuntimeError):
        outer()
    assert inner_after[0] > 0
    assert gc.get_freeze_count() == 0


@pytest.mark.parametrize(
    ("task", "args"),
    [
        (tasks.run_relay, ("svc", {})),
        (tasks.run_confirmations, ("svc", {})),
        (tasks.run_cleanup, ("svc", {})),
        (backfill_tasks.backfill, (object(), object())),
        (replay_tasks.replay, (object(), object())),
    ],
)
def test_every_long_running_task_body_freezes_the_heap(
    task: Callable[..., Any], args: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each body's first step (loading the service, or opening its engine) is replaced by one that
    records the freeze count and stops the body there: a count above 0 means the body runs frozen."""
    seen: list[int] = []

    def first_step(*_args: Any, **_kwargs: Any) -> Any:
        seen.append(gc.get_freeze_count())
        raise LookupError("stop here")

    for module in (tasks, backfill_tasks, replay_tasks):
        for name in ("read_service", "db_engine"):
            if hasattr(module, name):
                monkeypatch.setattr(module, name, first_step)
    with pytest.raises(LookupError):
        task(*args)
    assert seen and seen[0] > 0, task
    assert gc.get_freeze_count() == 0
