"""The operator requests, one per operation: relay, confirm, cleanup, replay, backfill, reconcile, audit and
explain. A new filter or option is one field here; the DAG's Params, the CLI and the page follow."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, ClassVar

from pydantic import Field, field_validator, model_validator

from outbox_relay.config import ServiceConfig
from outbox_relay.models import (
    DEAD_LETTER,
    DEFAULT_CHUNK_SECONDS,
    DEFAULT_MAX_ROWS,
    FAILED,
    UNCONFIRMED,
    BackfillJob,
    HistoryEntry,
    ReplayFilter,
    ReplayJob,
    Window,
)
from outbox_relay.requests.base import (
    ISO_HELP,
    FieldsError,
    IsoTime,
    OperatorRequest,
    Option,
    OptionalIsoTime,
    Reason,
    RequestError,
    Surface,
    TimeBudget,
    Words,
    split_words,
)
from outbox_relay.times import to_db_time

REPLAY_KINDS = (FAILED, UNCONFIRMED, DEAD_LETTER)


def _before(request: OperatorRequest, start: str, end: str) -> None:
    """``start`` < ``end`` when both are given (a window whose end is not after its start selects nothing)."""
    first, last = getattr(request, start), getattr(request, end)
    if first is None or last is None or (first.tzinfo is None) != (last.tzinfo is None):
        return  # one with an offset, one in the DB's zone: compared once both are DB times (``Window``)
    if first >= last:
        raise FieldsError(lambda name: f"{name(start)} ({first}) must be before {name(end)} ({last})")


class RelayRequest(OperatorRequest):
    operation: ClassVar[str] = "relay"
    shard: Annotated[int | None, Option(param=False)] = Field(
        None, ge=0, description="A sharded service: relay only this shard (default: all)."
    )
    republish: Annotated[bool, Option(cli=False)] = Field(
        False,
        description="Runs of 'airflow backfill create' only: also re-publish SENT-but-unconfirmed rows of "
        "the run's interval (outbox-replay header). For an outage, prefer the service's backfill DAG.",
    )
    time_budget_seconds: TimeBudget = None

    def check(self, config: ServiceConfig, surface: Surface = "param") -> RelayRequest:
        """The shard exists (a service's shard count is in its file, not in the request)."""
        if self.shard is not None and self.shard >= config.shards:
            raise RequestError(
                self.operation,
                [
                    f"{self.namer(surface)('shard')} {self.shard}: service {config.service} has shards 0 to "
                    f"{config.shards - 1} (shards: {config.shards})"
                ],
            )
        return self


class ConfirmRequest(OperatorRequest):
    operation: ClassVar[str] = "confirm"
    time_budget_seconds: TimeBudget = None


class CleanupRequest(OperatorRequest):
    operation: ClassVar[str] = "cleanup"
    time_budget_seconds: TimeBudget = None


class ReplayRequest(OperatorRequest):
    operation: ClassVar[str] = "replay"
    reason: Reason
    statuses: Annotated[tuple[str, ...], Option(choice_flags=REPLAY_KINDS)] = Field(
        (FAILED,),
        description="failed: FAILED rows go back to NEW for the relay; unconfirmed: SENT rows without a "
        "confirmation are published again now (outbox-replay header); dead_letter: copies on the dead-letter "
        "topic go to their original topic.",
    )
    row_ids: Annotated[Words, Option(flags=("--row-id",), repeat=True)] = Field(
        (), description="Primary keys, separated by commas or spaces."
    )
    message_ids: Annotated[Words, Option(flags=("--message-id",), repeat=True)] = Field(
        (), description="Message ids, separated by commas or spaces."
    )
    key: str | None = Field(None, description="Only rows of this message key.")
    event_type: str | None = Field(None, description="Only rows of this event type.")
    created_from: Annotated[OptionalIsoTime, Option(flags=("--since",))] = Field(
        None, description=f"Only rows created at or after this. {ISO_HELP}."
    )
    created_until: Annotated[OptionalIsoTime, Option(flags=("--until",))] = Field(
        None, description=f"Only rows created before this. {ISO_HELP}."
    )
    max_rows: int = Field(
        DEFAULT_MAX_ROWS, ge=1, description="Refuse the replay when more rows match (nothing is changed)."
    )
    dry_run: bool = Field(False, description="Only list what would be replayed.")

    @field_validator("statuses", mode="before")
    @classmethod
    def _kinds(cls, value: object) -> tuple[str, ...]:
        kinds = tuple(dict.fromkeys(split_words(value))) or (FAILED,)
        unknown = sorted(set(kinds) - set(REPLAY_KINDS))
        if unknown:
            raise ValueError(f"{unknown} not among {', '.join(map(repr, REPLAY_KINDS))}")
        if DEAD_LETTER in kinds and len(kinds) > 1:
            raise ValueError(
                f"{DEAD_LETTER!r} reads the dead-letter topic, the others the table; replay them in separate runs"
            )
        return kinds

    @model_validator(mode="after")
    def _window(self) -> ReplayRequest:
        _before(self, "created_from", "created_until")
        return self

    @staticmethod
    def kinds_for(config: ServiceConfig) -> list[str]:
        """The statuses a service can replay: unconfirmed needs confirmations, dead_letter its topic."""
        kinds = [FAILED, *([UNCONFIRMED] if config.confirmation else [])]
        return kinds + ([DEAD_LETTER] if config.dead_letter_topic else [])

    def job(self, config: ServiceConfig, history: HistoryEntry) -> ReplayJob:
        """The replayer's job; times with an offset are converted to the service's DB time zone."""
        zone = config.db_tzinfo
        start, end = to_db_time(self.created_from, zone), to_db_time(self.created_until, zone)
        wanted = ReplayFilter(
            kinds=frozenset(self.statuses),
            row_ids=self.row_ids,
            message_ids=self.message_ids,
            key=self.key,
            event_type=self.event_type,
            created_from=start,
            created_until=end,
        )
        return ReplayJob(wanted, history, self.max_rows, self.dry_run)


class BackfillRequest(OperatorRequest):
    operation: ClassVar[str] = "backfill"
    since: IsoTime = Field(description=f"Rows created at or after this. {ISO_HELP}.")
    until: IsoTime = Field(description=f"Rows created before this. {ISO_HELP}.")
    reason: Reason
    republish: bool = Field(
        False,
        description="Also publish the window's SENT rows again (outbox-replay header); they keep their "
        "status and relay_run_id.",
    )
    max_rows_per_second: float | None = Field(
        None,
        gt=0,
        description="Pace the backfill (about one batch at a time); empty = as fast as the broker takes it.",
    )
    chunk_seconds: float = Field(
        DEFAULT_CHUNK_SECONDS,
        ge=1,
        description="The backfill lets a waiting scheduled relay in after each chunk of this many seconds.",
    )
    dry_run: bool = Field(False, description="Only count the window's rows by status.")

    @model_validator(mode="after")
    def _window(self) -> BackfillRequest:
        _before(self, "since", "until")
        return self

    def job(self, config: ServiceConfig, history: HistoryEntry) -> BackfillJob:
        """The backfiller's job; times with an offset are converted to the service's DB time zone."""
        zone = config.db_tzinfo
        window = Window(to_db_time(self.since, zone), to_db_time(self.until, zone))
        return BackfillJob(
            window=window,
            history=history,
            republish=self.republish,
            chunk_seconds=self.chunk_seconds,
            max_rows_per_second=self.max_rows_per_second,
            dry_run=self.dry_run,
        )


class ReconcileRequest(OperatorRequest):
    operation: ClassVar[str] = "reconcile"
    since: OptionalIsoTime = Field(
        None,
        description=f"Window start. {ISO_HELP}; empty = the run's data interval (manual runs and the CLI: "
        "the last reconciliation.window_hours).",
    )
    until: OptionalIsoTime = Field(None, description=f"Window end, exclusive. {ISO_HELP}; empty = now.")
    redeliver: bool = Field(
        False,
        description="Re-deliver what is missing (sent but never consumed) and mark consumed rows sent, "
        "instead of failing.",
    )
    include_failed: bool = Field(
        False, description="With redeliver: also send rows the relay gave up on again."
    )

    @model_validator(mode="after")
    def _checks(self) -> ReconcileRequest:
        _before(self, "since", "until")
        if self.include_failed and not self.redeliver:
            raise FieldsError(
                lambda name: f"{name('include_failed')} only makes sense with {name('redeliver')}"
            )
        return self

    def window_in(self, config: ServiceConfig) -> tuple[datetime | None, datetime | None]:
        return to_db_time(self.since, config.db_tzinfo), to_db_time(self.until, config.db_tzinfo)


class AuditRequest(OperatorRequest):
    operation: ClassVar[str] = "audit"
    since: IsoTime = Field(description=f"Rows created at or after this. {ISO_HELP}.")
    until: OptionalIsoTime = Field(None, description=f"Rows created before this (default: now). {ISO_HELP}.")

    @model_validator(mode="after")
    def _window(self) -> AuditRequest:
        _before(self, "since", "until")
        return self

    def window_in(self, config: ServiceConfig) -> tuple[datetime, datetime | None]:
        return to_db_time(self.since, config.db_tzinfo), to_db_time(self.until, config.db_tzinfo)


class ExplainRequest(OperatorRequest):
    operation: ClassVar[str] = "explain"
    row: Annotated[str, Option(positional=True, param=False)] = Field(
        description="The row's message id or primary key."
    )

    @field_validator("row", mode="before")
    @classmethod
    def _reference(cls, value: object) -> str:
        reference = str(value).strip()
        if not reference:
            raise ValueError("give a row id or a message id")
        return reference
