"""Plain data passed between the store, the publisher, the relay loop and the services built on them: the
value types the core, the Airflow glue and the inbox library share (the store imports them from here)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from outbox_relay.errors import ConfigurationError


@dataclass(frozen=True)
class Window:
    """A backfill's data interval: rows created in ``[start, end)`` (DB time zone, naive)."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ConfigurationError(f"window end {self.end} must be after its start {self.start}")


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
class ConfirmationMessage:
    """A parsed message from a result topic (not ``config.lifecycle.Confirmation``, the config section)."""

    message_id: str
    success: bool
    error: str | None


# What a replay looks for, and where a row-history entry came from.
FAILED, UNCONFIRMED, DEAD_LETTER = "failed", "unconfirmed", "dead_letter"


@dataclass(frozen=True)
class ReplayFilter:
    """Which rows a replay may touch; every given criterion must hold (an empty one is not applied)."""

    kinds: frozenset[str]  # FAILED and/or UNCONFIRMED
    row_ids: tuple[str, ...] = ()
    message_ids: tuple[str, ...] = ()
    key: str | None = None
    event_type: str | None = None
    created_from: datetime | None = None
    created_until: datetime | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """Who acted on rows, why, and the run (Airflow run id or CLI invocation) that did it: written with
    every row-history record (``outbox_relay_replay``): a replay's requeue or republish, a backfill's
    republish, and the relay's own failed attempts (``requested_by`` "relay")."""

    requested_by: str
    reason: str
    run_id: str


@dataclass(frozen=True)
class HistoryRecord:
    """One row-history record as read back (``explain`` lists them)."""

    action: str
    previous_status: str | None
    previous_error: str | None
    previous_run_id: str | None
    requested_by: str
    reason: str
    run_id: str
    at: datetime


@dataclass(frozen=True)
class RowSearch:
    """Which FAILED or unconfirmed rows a list of the Outbox page shows; every given criterion must hold
    (not ``config.table.RowFilter``, the rows a service relays)."""

    kind: str = FAILED  # FAILED or UNCONFIRMED
    created_from: datetime | None = None
    created_until: datetime | None = None
    key: str | None = None
    event_type: str | None = None
    error_text: str | None = None


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
    # Exactly once: rows a crashed run had committed to Kafka, marked SENT at this run's start (not sent again).
    recovered: int = 0
    # Exactly once: fencing, the probe and the progress read before the first claim; waiting for the Kafka
    # commits (part of publish_seconds).
    start_seconds: float = 0.0
    commit_seconds: float = 0.0
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


# --- what the store reads back for the core's services ------------------------------------


@dataclass(frozen=True)
class ListedRow:
    """A row in one of the Outbox page's lists."""

    row_id: Any
    message_id: str
    key: Any
    event_type: Any
    created_at: Any
    attempts: Any
    last_error: Any
    status: Any = None  # only where a list mixes statuses (a key's rows)


@dataclass(frozen=True)
class RowContent:
    """The start of a row's payload and its headers, for the page."""

    payload_preview: str | None  # at most store.dashboard.PREVIEW_CHARS characters
    payload_chars: int | None  # the whole payload's length
    headers: str | None


@dataclass(frozen=True)
class RowSnapshot:
    """A row's stored state, with its retry state from wherever the table keeps it."""

    row_id: Any
    message_id: str
    status: Any
    fields: dict[str, Any]  # logical name -> value, mapped columns only
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    given_up: bool  # marked failed in the attempt table (tables whose failed status is null)
    now: datetime  # the database clock when read

    @property
    def not_before(self) -> datetime | None:
        """The writer's not-before time: its own column, or (the standard table) next_attempt_at on a row
        never attempted."""
        if self.fields.get("not_before") is not None:
            return self.fields["not_before"]  # type: ignore[no-any-return]
        return self.next_attempt_at if self.attempts == 0 else None

    @property
    def scheduled(self) -> bool:
        """Its writer's not-before time is still ahead (by the database clock when read)."""
        return self.not_before is not None and self.not_before > self.now


@dataclass(frozen=True)
class ReplayCandidate:
    """A row a replay matched, with what it needs to requeue or republish it."""

    row_id: Any
    message_id: str
    kind: str  # FAILED or UNCONFIRMED
    key: Any
    status: Any
    attempts: int | None
    last_error: str | None
    run_id: str | None
    topic: str | None = None  # the row's own topic column (None: the service's topic)
    created_at: Any = None  # None without a creation time


@dataclass(frozen=True)
class AuditedRow:
    """A row an audit compares with what is on its topic."""

    row_id: Any
    message_id: str
    key: Any
    status: Any


@dataclass(frozen=True)
class ScannedRow:
    """A row reconciliation compares with the consumer's record of it."""

    row_id: Any
    message_id: str
    business_id: Any
    topic: str | None
    status: Any
    error: Any
    settled: bool  # sent longer than grace_seconds ago (DB clock)


@dataclass(frozen=True)
class BacklogRows:
    """What the backlog line is computed from (minutes before the hour are the hour's first minute)."""

    pending_by_created: dict[str, int]  # rows pending now, by creation minute
    left_by_created_and_left: dict[tuple[str, str], int]  # rows sent or given up on in the last hour
    pending_capped: bool  # more than PENDING_COUNTED rows are pending: the line is a lower bound
    left_known: (
        bool  # the rows that left could be read (sent_at, updated_at and a (status, updated_at) index)
    )


@dataclass(frozen=True)
class InboxRow:
    """One message in a consumer's inbox table, for the page."""

    message_id: str
    topic: str
    partition: int
    offset: int
    status: str
    error: str | None
    received_at: datetime


DEFAULT_MAX_ROWS = 1000  # a replay selecting more rows is refused (nothing changes)
DEFAULT_CHUNK_SECONDS = 20.0  # below the relay's default lock wait (30 s): a waiting scheduled relay gets in


@dataclass(frozen=True)
class ReplayJob:
    """What a replay does: the rows it may touch, who asked, and its bound."""

    wanted: ReplayFilter
    history: HistoryEntry  # who asked, why, and the run carrying it out
    max_rows: int = DEFAULT_MAX_ROWS
    dry_run: bool = False


@dataclass(frozen=True)
class BackfillJob:
    """What a backfill does: its window, who asked, and how it is paced."""

    window: Window
    history: HistoryEntry  # who asked, why, and the run (Airflow run id or CLI invocation) carrying it out
    republish: bool = False
    chunk_seconds: float = DEFAULT_CHUNK_SECONDS
    max_rows_per_second: float | None = None
    dry_run: bool = False
