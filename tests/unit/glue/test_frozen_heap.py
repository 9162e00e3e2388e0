"""The relay-sized task bodies run with the task process's existing heap frozen, so the collector's full
collections walk only what the run allocates (plugins/outbox_relay_airflow/heap.py)."""

from __future__ import annotations

import gc
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest

from outbox_relay_airflow import operations
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


SERVICE = SimpleNamespace(
    confirmation=SimpleNamespace(topic="answers"),
    retention=object(),
    connections=SimpleNamespace(kafka="kafka_default"),
    confirmation_group_id="group",
)


@pytest.mark.parametrize(
    ("operation", "args"),
    [
        (operations.relay, (SERVICE, object())),
        (operations.confirm, (SERVICE, None)),
        (operations.cleanup, (SERVICE, None)),
        (operations.backfill, (SERVICE, object())),
        (operations.replay, (SERVICE, object())),
    ],
)
def test_every_long_running_operation_freezes_the_heap(
    operation: Callable[..., Any], args: tuple[Any, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each operation's first step (opening its engine, producer or consumer) is replaced by one that
    records the freeze count and stops the operation there: a count above 0 means it runs frozen."""
    seen: list[int] = []

    def first_step(*_args: Any, **_kwargs: Any) -> Any:
        seen.append(gc.get_freeze_count())
        raise LookupError("stop here")

    for name in ("db_engine", "service_publisher", "OutboxConsumerHook"):
        monkeypatch.setattr(operations, name, first_step)
    with pytest.raises(LookupError):
        operation(*args)
    assert seen and seen[0] > 0, operation
    assert gc.get_freeze_count() == 0
