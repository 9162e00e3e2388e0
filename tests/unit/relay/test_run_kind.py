"""A run says what kind it is; a request whose fields do not fit its kind is refused, naming the field;
callers that leave the kind out get the kind their fields made before it existed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest

from outbox_relay.errors import ConfigurationError, OutboxRelayError
from outbox_relay.models import HistoryEntry, Window
from outbox_relay.relay.engine import RunKind, RunRequest, RunRequestError

WINDOW = Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
WHO = HistoryEntry("me", "why", "run")


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({}, RunKind.RELAY),
        ({"shard": 0}, RunKind.RELAY),
        ({"shard": 3, "time_budget_seconds": 5, "poll_interval_seconds": 1}, RunKind.RELAY),
        ({"window": WINDOW}, RunKind.BACKFILL),
        ({"window": WINDOW, "shard": 1}, RunKind.BACKFILL),
        (
            {"window": WINDOW, "republish": True, "history": WHO, "start_after": 0, "max_batches": 1},
            RunKind.BACKFILL,
        ),
        ({"named_rows": (1, 2), "republish": True, "history": WHO}, RunKind.REPLAY),
    ],
)
def test_a_request_without_a_kind_gets_the_kind_its_fields_make(
    fields: dict[str, Any], kind: RunKind
) -> None:
    assert RunRequest("r", **fields).kind is kind
    assert RunRequest("r", kind=kind, **fields).kind is kind


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": RunKind.RELAY, "window": WINDOW}, "a relay run cannot set window"),
        ({"kind": RunKind.RELAY, "republish": True}, "a relay run cannot set republish"),
        (
            {"kind": RunKind.RELAY, "start_after": 7, "max_batches": 2},
            "a relay run cannot set max_batches, start_after",
        ),
        ({"kind": RunKind.BACKFILL}, "a backfill run needs window"),
        ({"window": WINDOW, "named_rows": (1,), "republish": True}, "a replay run cannot set window"),
        (
            {"kind": RunKind.BACKFILL, "window": WINDOW, "named_rows": (1,)},
            "a backfill run cannot set named_rows",
        ),
        ({"kind": RunKind.REPLAY, "named_rows": (1,)}, "a replay run needs republish"),
        ({"kind": RunKind.REPLAY, "republish": True}, "a replay run needs named_rows"),
        ({"named_rows": (1,), "republish": True, "shard": 0}, "a replay run cannot set shard"),
        ({"window": WINDOW, "history": WHO}, "only for a republish"),
        ({"shard": -1}, "shard -1 is negative"),
        ({"window": WINDOW, "max_batches": 0}, "max_batches 0 is below 1"),
    ],
)
def test_a_request_that_does_not_fit_its_kind_is_refused_by_name(
    fields: dict[str, Any], message: str
) -> None:
    with pytest.raises(RunRequestError, match=message) as refused:
        RunRequest("run-7", **fields)
    assert "run 'run-7'" in str(refused.value)
    assert isinstance(refused.value, ConfigurationError) and isinstance(refused.value, OutboxRelayError)


def test_only_a_republish_records_a_history_entry() -> None:
    assert RunRequest("r").history_entry is None
    assert RunRequest("r", window=WINDOW, republish=True).history_entry == HistoryEntry(
        "airflow", "republish", "r"
    )
    assert RunRequest("r", named_rows=(1,), republish=True, history=WHO).history_entry is WHO
