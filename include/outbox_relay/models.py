"""Plain data passed between the repository, the publisher and the relay loop."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class Window:
    """A backfill's data interval: rows created in ``[start, end)`` (DB time zone, naive)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError(f"window end {self.end} must be after its start {self.start}")


@dataclass(slots=True)
class OutboxRow:
    """One claimed outbox row with its retry state, built by ``store.claim.ClaimQuery.decode`` (which
    checks this field order when imported)."""

    row_id: Any
    message_id: str
    key: Any
    event_type: str | None
    topic: str | None
    body: Any
    extra_headers: Any
    status: Any
    attempts: int = 0
    waiting: bool = False
    failed: bool = False
    valid_json: bool | None = None  # the server's JSON_VALID() of the payload, when it was asked
    partition: int | None = None  # the row's own partition (columns.partition); None = by key
    retry: bool = True  # False when the row's retry flag (columns.retry_flag) is 0
    position: Any = None  # where the row is in claim order (``order_by``); None: its primary key


@dataclass(frozen=True)
class Failure:
    """A row whose publication failed, with what to record for it."""

    row: OutboxRow
    error: str
    terminal: bool
    delay_seconds: float


@dataclass(frozen=True)
class Confirmation:
    """A parsed message from a result topic."""

    message_id: str
    success: bool
    error: str | None


class StatsMixin:
    """Run statistics are returned to Airflow (XCom) and printed, so they turn into plain dicts."""

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class RunStats(StatsMixin):
    """What a relay run did."""

    batches: int = 0
    claimed: int = 0
    published: int = 0
    republished: int = 0
    retried: int = 0
    failed: int = 0
    dead_lettered: int = 0
    held_back: int = 0
    polls: int = 0
    elapsed_seconds: float = 0.0
    stopped_because: str = "drained"
    lock_holder_connection_id: int | None = None  # set when another relay held the table's lock
    # Runs in a row (this one included) that found the lock held; 0 when this one got it; None when they
    # could not be counted (no outbox_relay_lock_busy table).
    lock_busy_runs: int | None = 0
    shard: int | None = None  # the shard this run relayed (None: the whole table)
    last_row_id: Any = None  # the last row claimed
    last_position: Any = None  # its place in claim order (where a chunked backfill goes on)
    publish_seconds: float = 0.0  # waiting for the broker's acknowledgements, all batches together
    slowest_publish_seconds: float = 0.0  # the batch that waited longest
    # Per topic, what the broker acknowledged: rows, first_row_id and last_row_id in claim order (the
    # relay DAG's asset events and metrics are made from it).
    topics: dict[str, dict[str, Any]] = field(default_factory=dict)

    def count_acked(self, topic: str, rows: int, first_row_id: Any, last_row_id: Any) -> None:
        count_acked(self.topics, topic, rows, first_row_id, last_row_id)


def count_acked(
    topics: dict[str, dict[str, Any]], topic: str, rows: int, first_row_id: Any, last_row_id: Any
) -> None:
    """Add acknowledged rows to a per-topic tally (``RunStats.topics``): the first row id stays the one
    first counted, the last row id follows."""
    entry = topics.setdefault(topic, {"rows": 0, "first_row_id": first_row_id})
    entry["rows"] += rows
    entry["last_row_id"] = last_row_id
