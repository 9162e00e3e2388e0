"""What one relay run should do (``RunRequest``), and what kind of run it is (``RunKind``)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any

from outbox_relay.errors import ConfigurationError
from outbox_relay.models import HistoryEntry, Window


class RunKind(Enum):
    """What a run is for; it decides which of ``RunRequest``'s fields may be set.

    A shard is not a kind of its own: a scheduled relay and a backfill of a sharded service both run per
    shard (``RunRequest.shard``)."""

    RELAY = "relay"  # a scheduled (or manual) run: every eligible NEW row of the table, or of one shard
    BACKFILL = "backfill"  # rows created in a window, NEW ones (and with republish, SENT ones again)
    REPLAY = "replay"  # the named rows only, republished (a replay of SENT-but-unconfirmed rows)


class RunRequestError(ConfigurationError):
    """A ``RunRequest`` whose fields do not fit its kind (a bug of its caller, named in the message)."""


# The fields each kind may set beyond run_id, time budget and polling; the ones it must set.
_ALLOWED: dict[RunKind, frozenset[str]] = {
    RunKind.RELAY: frozenset({"shard"}),
    RunKind.BACKFILL: frozenset({"window", "republish", "history", "start_after", "max_batches", "shard"}),
    RunKind.REPLAY: frozenset({"named_rows", "republish", "history"}),
}
_REQUIRED: dict[RunKind, frozenset[str]] = {
    RunKind.RELAY: frozenset(),
    RunKind.BACKFILL: frozenset({"window"}),
    RunKind.REPLAY: frozenset({"named_rows", "republish"}),
}


_OPTIONAL_FIELDS = ("window", "republish", "named_rows", "history", "start_after", "max_batches", "shard")


def _is_set(value: Any) -> bool:
    """A field given a value (0 is one: shard 0, or a cursor at 0)."""
    return value is not None and value is not False and not (isinstance(value, tuple) and not value)


@dataclass(frozen=True)
class RunRequest:
    """What one run should do; built from the Airflow context or the CLI.

    ``kind`` says what the run is for; left out, it is taken from the fields set (named rows: a replay,
    a window: a backfill, else a relay run), as callers built requests before it existed. Either way the
    fields must fit the kind, or ``RunRequestError`` names the one that does not."""

    run_id: str
    window: Window | None = None
    republish: bool = False
    time_budget_seconds: float | None = None
    poll_interval_seconds: float | None = None
    named_rows: tuple[Any, ...] = ()  # a replay: only these rows (with republish, SENT ones too)
    history: HistoryEntry | None = None  # who asked for the republish, and why (row-history records)
    start_after: Any = None  # resume a chunked backfill: only rows after this place in claim order
    max_batches: int | None = None  # a throttled backfill's chunk: stop claiming after this many batches
    shard: int | None = None  # a sharded service's relay task: only rows of this shard (None: all)
    kind: RunKind | None = None  # None: inferred (see above); always set after construction

    def __post_init__(self) -> None:
        kind = self.kind
        if kind is None:
            kind = RunKind.REPLAY if self.named_rows else RunKind.BACKFILL if self.window else RunKind.RELAY
            object.__setattr__(self, "kind", kind)
        set_fields = {name for name in _OPTIONAL_FIELDS if _is_set(getattr(self, name))}
        extra = sorted(set_fields - _ALLOWED[kind])
        if extra:
            raise RunRequestError(f"run {self.run_id!r}: a {kind.value} run cannot set {', '.join(extra)}")
        missing = sorted(_REQUIRED[kind] - set_fields)
        if missing:
            raise RunRequestError(f"run {self.run_id!r}: a {kind.value} run needs {', '.join(missing)}")
        if self.history is not None and not self.republish:
            raise RunRequestError(
                f"run {self.run_id!r}: history (its row-history entry) is only for a republish"
            )
        if self.shard is not None and self.shard < 0:
            raise RunRequestError(f"run {self.run_id!r}: shard {self.shard} is negative")
        if self.max_batches is not None and self.max_batches < 1:
            raise RunRequestError(f"run {self.run_id!r}: max_batches {self.max_batches} is below 1")

    @property
    def history_entry(self) -> HistoryEntry | None:
        """What a republish run records in the row history (None: the run republishes nothing)."""
        if not self.republish:
            return None
        return self.history or HistoryEntry("airflow", "republish", self.run_id)
