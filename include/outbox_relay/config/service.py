"""A registered service: one YAML file per registered service.

The models are the schema. They map the relay's logical fields and statuses
onto whatever columns and stored values an existing outbox table already uses,
so legacy tables can be registered without altering them. When ``columns`` is
omitted the project's standard table is assumed (``outbox-relay ddl`` prints its DDL).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from typing import Literal

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from outbox_relay.config import rules
from outbox_relay.config.fields import (
    StatusValue,
    Strict,
    check_cron,
    check_schedule,
    check_topic,
)
from outbox_relay.config.identifiers import TableNameField, check_identifier
from outbox_relay.config.lifecycle import (
    DEADLINE_MARGIN_SECONDS,
    Confirmation,
    Reconciliation,
    Retention,
    Slo,
)
from outbox_relay.config.settings import Connections, Inbox, Kafka, Retry
from outbox_relay.config.table import STANDARD_COLUMNS, Columns, JsonValues, Payload, RowFilter, Statuses
from outbox_relay.errors import ConfigurationError, MissingConfigurationError

_SERVICE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
LOCK_BUCKETS = 64  # sharded relays lock buckets of keys; every shard count divides it


class ServiceConfig(Strict):
    """A registered service: one outbox table relayed by its own DAGs."""

    service: str = Field(
        description="Service name, `^[a-z][a-z0-9_]{0,49}$`: used in DAG ids and headers; must equal the file name."
    )
    description: str = Field("", description="Shown in the DAG docs.")
    owner: str = Field("data-platform", description="The DAGs' owner.")
    connections: Connections = Field(Connections(), description="Airflow connection ids.")
    inboxes: tuple[Inbox, ...] = Field(
        (),
        description="Consumers' inbox tables the Outbox page shows (read-only): each consumer of this "
        "service's messages that dedupes with the `outbox_inbox` library.",
    )
    table: TableNameField = Field(
        "outbox_message",  # parsed into a TableName (validate_default)
        validate_default=True,
        description="Outbox table, any MySQL name: `table` or `schema.table` (letters, digits, `_`), "
        "backtick-quoted (``'`cap.published`'``, ``'shop.`my table`'``) or `{schema: ..., name: ...}`. Always "
        "quoted in SQL (backticks doubled); control characters, names over 64 characters and trailing spaces "
        "are refused, naming the problem.",
    )
    topic: str | None = Field(
        None, description="Topic for rows without a topic column (required if `columns.topic` is not mapped)."
    )
    topics: tuple[str, ...] = Field(
        (), description="Every topic rows may name; created/checked by the relay."
    )
    dead_letter_topic: str | None = Field(
        None, description="Where rows that ran out of attempts are copied before becoming `failed`."
    )
    event_type: str | None = Field(None, description="Constant event type when the table has no such column.")
    columns: Columns = Field(
        Columns.model_validate(STANDARD_COLUMNS),
        description="Logical field -> column. A given block replaces the standard mapping entirely.",
    )
    statuses: Statuses = Field(Statuses(), description="Stored status values.")
    payload: Payload = Field(Payload(), description="Where the message body comes from.")
    completion: Literal["update", "delete", "archive", "timestamp"] = Field(
        "update",
        description="What happens to a row once the broker acknowledged it: `update` (status SENT), `delete` "
        "(deleted in the same transaction; for insert-only outbox tables), `archive` (status SENT, then moved "
        "into `archive_table` in the same transaction), `timestamp` (`columns.sent_at` set; pending while it "
        "is `NULL`, for tables without a status column). `delete` and `archive` keep no SENT rows, so "
        "confirmations, reconciliation, audits and backfill `republish` are refused with a message saying so.",
    )
    archive_table: TableNameField | None = Field(
        None,
        description="With `completion: archive`: where sent rows move, a table of the same shape (`validate` "
        "prints `CREATE TABLE ... LIKE ...` when it is missing or differs).",
    )
    order_by: tuple[str, ...] = Field(
        (),
        description="Columns that define claim order, e.g. `[created_at]` for a table keyed by random UUIDs "
        "(claiming by primary key would be random order, breaking per-key order). The primary key is added "
        "last (a total order); the relay pages through `(status, order_by..., id)`, which `validate` checks "
        "for and prints the `ALTER TABLE` for. Empty: the primary key.",
    )
    per_key_order: bool = Field(
        True,
        description="Rows of one key reach Kafka in the order they were written. With an empty `order_by` and "
        "a primary key that is not an integer, `validate` reads a sample of its values: random UUIDs "
        "(versions 1-5) are a problem naming the fix (`order_by: [<creation column>]`), values it cannot "
        "place (not UUIDs, ULIDs or integers) a note; time-ordered ids (UUIDv7, ULID) pass. `false` declares "
        "that the table's consumers do not need per-key order (nothing is checked).",
    )
    json_values: JsonValues = Field(
        default_factory=JsonValues,
        description="Key, event type, message id, body or headers read from inside the payload or headers "
        "JSON (paths such as `$.PARTITION_ID`, `$.Value`).",
    )
    batch_size: int = Field(1000, ge=1, le=50_000, description="Rows claimed per batch (and transaction).")
    threshold_seconds: float = Field(
        0,
        ge=0,
        description="Only relay rows at least this old (DB clock); above 0 it needs `columns.created_at`.",
    )
    time_budget_seconds: float = Field(
        300,
        gt=0,
        description="A relay run stops claiming after this; also the budget of confirmation and cleanup runs.",
    )
    poll_interval_seconds: float | None = Field(
        None,
        gt=0,
        le=60,
        description="Low-latency mode: a run that drained the table keeps polling at this interval until "
        'its time budget is spent (pair with `schedule: "@continuous"`). `null`: a run ends once drained.',
    )
    linger_seconds: float = Field(
        0,
        ge=0,
        le=3600,
        description="A run that drained the table keeps looking for new rows (every `poll_interval_seconds`, "
        "or every 0.1 s) until none came for this long, then ends; its time budget still bounds it. With "
        '`schedule: "@rows"` steady traffic is then relayed within a look of its commit instead of one task '
        "start per burst, and an idle service still costs nothing once the linger is over. 0: a run ends "
        "once drained (or, with `poll_interval_seconds`, polls until its budget is spent).",
    )
    pipelining: bool = Field(
        True,
        description="Claim the next batch and mark the previous one SENT (on their own connections) while "
        "the current batch is produced. A crash can then leave up to two batches acknowledged but not yet "
        "marked SENT (republished by the next run, deduped by consumers); `false`: one batch at a time, at "
        "most one acknowledged but unmarked after a crash.",
    )
    delivery: Literal["at_least_once", "exactly_once"] = Field(
        "at_least_once",
        description="`at_least_once`: a crash between Kafka's acknowledgement and the SENT update publishes "
        "those rows again (up to one batch, two with `pipelining`; the inbox dedupes). `exactly_once`: each "
        "batch is one Kafka transaction with a progress record (`kafka.progress_topic`), so after any crash "
        "the next run marks what Kafka committed SENT without publishing it again, and a second relay of the "
        "same rows fences the first; consumers must read with `isolation.level=read_committed`. Needs a broker "
        "with transactions and the `outbox_relay_progress` table (`outbox-relay ddl --shared-only --apply`).",
    )
    shards: int = Field(
        1,
        description="Spread one hot table over this many relay tasks (1, 2, 4, ... 64): a row belongs to shard "
        "`CRC32(key) mod shards`, so each key stays in one shard (per-key order) and shards never touch each "
        "other's rows; needs a key. The relay DAG maps one relay task per shard; `outbox-relay relay "
        "<service> --shard S` runs one shard.",
    )
    relay_lock_wait_seconds: float = Field(
        30, ge=0, description="How long a relay run waits for another relay of the same table to finish."
    )
    relay_lock_busy_runs_to_fail: int = Field(
        5,
        ge=0,
        description="A relay run that finds the table's lock held relays nothing; after this many such runs "
        "in a row (counted in `outbox_relay_lock_busy`) the run fails at once (not retried), naming the "
        "holder's MySQL connection id; `0` = never fail.",
    )
    replay_approval_above_rows: int = Field(
        100,
        ge=0,
        description="A replay DAG run that selects more rows than this waits for a human's approval in "
        "Airflow's Required Actions before it changes anything; `0` = every replay waits.",
    )
    schedule: str | None = Field(
        "* * * * *",
        description="Cron expression (5 or 6 fields) or preset for the relay DAG; `null` = no schedule; "
        '`"@rows"` = event-driven: the triggerer starts the relay when rows are eligible (near-zero cost '
        "while the table is empty).",
    )
    watch_seconds: float = Field(
        5,
        gt=0,
        le=300,
        description='With `schedule: "@rows"` / `confirm_schedule: "@messages"`: how '
        "often the triggerer looks for eligible rows / waiting confirmations.",
    )
    watch_fallback_schedule: str | None = Field(
        "@hourly",
        description='With `schedule: "@rows"` / `confirm_schedule: "@messages"`: a slow clock those DAGs '
        "also run on (Airflow's asset-or-time schedule), so that rows and confirmations never wait forever "
        "when the triggerer is down or its trigger died: a dead triggerer delays them by up to this "
        "interval. Cron expression or preset; `@hourly` runs at a minute of the hour fixed per service "
        "(from its name), so many services' fallback runs do not all start at once. A fallback run with "
        "nothing to do still starts the DAG's task processes: 2.9 CPU-s for a relay and a confirmations "
        "run (measured), so hourly adds about 3 CPU-s per service-hour to an idle service's cost (goal: 5) "
        "where every 15 minutes would add 12. `null`: no fallback (rows wait for the triggerer, however "
        "long it is away).",
    )
    confirm_schedule: str | None = Field(
        "* * * * *",
        description="Cron expression or preset for the confirmations DAG; `null` = no schedule; "
        '`"@messages"` = event-driven: the triggerer starts the ingest when confirmations wait in the '
        "topic (its group's lag, read every `watch_seconds` without joining the group).",
    )
    cleanup_schedule: str | None = Field(
        "@daily", description="Cron expression or preset for the cleanup DAG; `null` = no schedule."
    )
    start_paused: bool = Field(
        False, description="Create the service's DAGs paused (Airflow's own default is paused)."
    )
    db_time_zone: str = Field(
        "+00:00", description="Session time zone (a UTC offset) the service's timestamps are in."
    )
    created_at_unit: Literal["datetime", "epoch_s", "epoch_ms"] = Field(
        "datetime",
        description="How `columns.created_at` stores time: `datetime` (DATETIME/TIMESTAMP in `db_time_zone`), "
        "`epoch_s` or `epoch_ms` (integer seconds / milliseconds since 1970 UTC, e.g. Eventuate's "
        "`creation_time`). The threshold, backfill windows, retention, audits and the Outbox page read it "
        "accordingly; `validate` refuses a column whose type does not match, naming the unit to set.",
    )
    retry: Retry = Field(Retry(), description="Retry policy.")
    confirmation: Confirmation | None = Field(
        None, description="Result topic; without it there is no confirmations DAG and `sent` is terminal."
    )
    retention: Retention | None = Field(
        Retention(),
        description="`null` disables cleanup (and its DAG); otherwise needs `columns.created_at` or "
        "`columns.updated_at`.",
    )
    kafka: Kafka = Field(Kafka(), description="Producer timing and topic creation.")
    row_filter: RowFilter | None = Field(
        None,
        description="Only rows whose column equals the value (claim, backlog, retention, reconciliation), so "
        "several subsystems sharing one table each register as a service; each gets its own relay lock.",
    )
    reconciliation: Reconciliation | None = Field(
        None,
        description="Compare the table with the consumers' table; adds the `outbox_<service>_reconcile` DAG "
        "and the `reconcile` CLI command.",
    )
    slo: Slo = Field(
        Slo(),
        description="What each relay and confirmations run's `check_health` task holds the service to (red "
        "runs, alerts).",
    )

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        if not _SERVICE.match(value):
            raise ValueError(f"{value!r} must match {_SERVICE.pattern} (it becomes part of DAG ids)")
        return value

    @field_validator("topic", "dead_letter_topic")
    @classmethod
    def _topic(cls, value: str | None) -> str | None:
        return None if value is None else check_topic(value)

    @field_validator("topics")
    @classmethod
    def _topics(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_topic(v) for v in value)

    @field_validator("schedule", "confirm_schedule", "cleanup_schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @field_validator("watch_fallback_schedule")
    @classmethod
    def _fallback(cls, value: str | None) -> str | None:
        return check_cron(None if value is None or value.strip().lower() == "none" else value)

    @field_validator("order_by")
    @classmethod
    def _order_by(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_identifier(v) for v in value)

    @property
    def claim_order(self) -> tuple[str, ...]:
        """The columns rows are claimed in, always ending with the primary key (a total order)."""
        if not self.order_by:
            return (self.columns.id,)
        rest = tuple(c for c in self.order_by if c.lower() != self.columns.id.lower())
        return (*rest, self.columns.id)

    @property
    def pending_column(self) -> str | None:
        """The column that tells pending rows from done ones: the status, or for a status-less table the
        completion time (timestamp); None when every row in the table is pending (delete, archive)."""
        if self.columns.status is not None:
            return self.columns.status
        return self.columns.sent_at if self.completion == "timestamp" else None

    @property
    def scan_index(self) -> tuple[str, ...]:
        """The columns an index must start with for the claim's scan: the row filter's column, the
        pending column, then the claim order."""
        return self.scan_index_for(None)

    @property
    def shard_scan_index(self) -> tuple[str, ...] | None:
        """The index a shard's claim scans when ``columns.shard`` is mapped: the shard column before the
        claim order (whole-table runs keep ``scan_index``)."""
        return None if self.columns.shard is None else self.scan_index_for(self.columns.shard)

    def scan_index_for(self, shard_column: str | None) -> tuple[str, ...]:
        """The scan's index columns, with ``shard_column`` (if any) before the claim order."""
        lead = (self.row_filter.column,) if self.row_filter else ()
        pending = (self.pending_column,) if self.pending_column else ()
        shard = (shard_column,) if shard_column else ()
        return (*lead, *pending, *shard, *self.claim_order)

    @field_validator("db_time_zone")
    @classmethod
    def _tz(cls, value: str) -> str:
        if not re.match(r"^[+-]\d{2}:\d{2}$", value):
            raise ValueError(f"{value!r} must be a UTC offset like '+00:00'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        rules.check_topics(self)
        rules.check_payload(self)
        rules.check_json_values(self)
        rules.check_completion(self)
        rules.check_statuses(self)
        if self.threshold_seconds > 0 and self.columns.created_at is None:
            raise ValueError("threshold_seconds needs columns.created_at (the table has no creation time)")
        rules.check_reconciliation(self)
        rules.check_slo(self)
        rules.check_shards(self)
        rules.check_delivery(self)
        rules.check_event_driven(self)
        rules.check_inboxes(self)
        if self.retention is not None and self.columns.created_at is None and self.columns.updated_at is None:
            raise ValueError(
                "retention needs columns.created_at or columns.updated_at to age rows; "
                "set 'retention: null' to disable it"
            )
        return self

    def shard_buckets(self, shard: int | None) -> tuple[int, ...]:
        """The lock buckets a relay of ``shard`` holds (all of them for a whole-table run). Buckets are
        CRC32(key) mod 64, and shard s of N owns the buckets b with b mod N = s: two runs whose rows can
        overlap share a bucket, even across a change of ``shards``, so they never run at once."""
        if shard is None:
            return tuple(range(LOCK_BUCKETS))
        if not 0 <= shard < self.shards:
            raise ConfigurationError(f"service {self.service!r} has {self.shards} shard(s): no shard {shard}")
        return tuple(b for b in range(LOCK_BUCKETS) if b % self.shards == shard)

    # --- derived values -------------------------------------------------------------

    @property
    def db_tzinfo(self) -> timezone:
        """``db_time_zone`` as a fixed-offset time zone (naive DB times are in it)."""
        sign = -1 if self.db_time_zone.startswith("-") else 1
        hours, minutes = (int(x) for x in self.db_time_zone[1:].split(":"))
        return timezone(sign * timedelta(hours=hours, minutes=minutes))

    def db_epoch_ms(self, moment: datetime) -> int:
        """A naive DB time (or an aware one) as epoch milliseconds, the unit of Kafka timestamps."""
        aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=self.db_tzinfo)
        return int(aware.timestamp() * 1000)

    @property
    def all_topics(self) -> tuple[str, ...]:
        """Every topic the relay produces to (or expects), in a stable order."""
        names = [*self.topics]
        for extra in (self.topic, self.dead_letter_topic):
            if extra and extra not in names:
                names.append(extra)
        return tuple(names)

    @property
    def keeps_sent_rows(self) -> bool:
        """Sent rows stay in the table (``completion: update`` or ``timestamp``); delete and archive take
        them out."""
        return self.completion in ("update", "timestamp")

    @property
    def relay_deadline_seconds(self) -> float | None:
        """Seconds after a relay run is queued by which it must be done (None: no Deadline Alert)."""
        limit = self.slo.max_relay_run_seconds
        if limit == 0:
            return None
        return limit if limit is not None else self.time_budget_seconds + DEADLINE_MARGIN_SECONDS

    @property
    def confirmation_group_id(self) -> str:
        if self.confirmation is None:
            raise MissingConfigurationError(f"service {self.service!r} has no confirmation topic")
        return self.confirmation.group_id or f"outbox-relay-{self.service}"

    @property
    def terminal_statuses(self) -> tuple[StatusValue, ...]:
        """Statuses retention may delete after ``retention.days``."""
        if self.confirmation is None:
            return (self.statuses.sent,)
        assert self.statuses.confirmed is not None
        return (self.statuses.confirmed,)
