"""Service configuration: one YAML file per registered service.

The models are the schema. They map the relay's logical fields and statuses
onto whatever columns and stored values an existing outbox table already uses,
so legacy tables can be registered without altering them. When ``columns`` is
omitted the project's standard table (``sql/01_outbox_message.sql``) is assumed.
"""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from outbox_relay.identifiers import check_identifier, check_table_name

StatusValue = str | int

# Kafka topic names: legal characters and length, as the broker enforces them.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_SERVICE = re.compile(r"^[a-z][a-z0-9_]{0,49}$")
_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")
_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually"}

STANDARD_COLUMNS: dict[str, str] = {
    "id": "id",
    "message_id": "message_id",
    "key": "aggregate_id",
    "event_type": "event_type",
    "topic": "topic",
    "payload": "payload",
    "headers": "headers",
    "status": "status",
    "created_at": "created_at",
    "attempts": "attempts",
    "last_error": "last_error",
    "next_attempt_at": "next_attempt_at",
    "sent_at": "sent_at",
    "run_id": "relay_run_id",
    "confirmed_at": "confirmed_at",
    "updated_at": "updated_at",
}


def check_topic(name: str) -> str:
    if not _TOPIC.match(name) or name in {".", ".."}:
        raise ValueError(f"{name!r} is not a valid Kafka topic name: 1-249 characters from [A-Za-z0-9._-]")
    return name


def check_schedule(value: str | None) -> str | None:
    if value is None or value in _PRESETS:
        return value
    fields = value.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(f"{value!r} is neither a cron expression (5 fields) nor one of {sorted(_PRESETS)}")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Connections(_Strict):
    """Airflow connection ids; the relay never reads credentials from YAML."""

    db: str = Field("outbox_db", description="Airflow connection id of the MySQL database (mysql type).")
    kafka: str = Field("kafka_default", description="Airflow connection id of Kafka (kafka type).")


class Columns(_Strict):
    """Logical field -> column name. ``None`` means the table has no such column."""

    id: str = Field(description="Primary key; rows are claimed in this order.")
    status: str = Field(description="Status column.")
    message_id: str | None = Field(
        None, description="Unique message id; when absent it is derived as '<service>:<table>:<id>'."
    )
    key: str | None = Field(None, description="Business/aggregate id used as the Kafka message key.")
    event_type: str | None = None
    topic: str | None = Field(None, description="Per-row topic; when absent the service's 'topic' is used.")
    payload: str | None = Field(None, description="Column holding the message body.")
    headers: str | None = Field(None, description="Column holding extra headers as a JSON object.")
    created_at: str | None = Field(None, description="Creation time; needed for thresholds and backfills.")
    attempts: str | None = None
    last_error: str | None = None
    next_attempt_at: str | None = None
    sent_at: str | None = None
    run_id: str | None = None
    confirmed_at: str | None = None
    updated_at: str | None = None
    partition: str | None = Field(
        None,
        description="Per-row Kafka partition; NULL = chosen by key. A partition that does not exist fails the row.",
    )
    retry_flag: str | None = Field(
        None, description="Per-row retry switch: rows holding 0 become FAILED on their first failure."
    )

    @field_validator("*")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value)

    @model_validator(mode="after")
    def _retry_columns_together(self) -> Self:
        group = [self.attempts, self.last_error, self.next_attempt_at]
        if any(group) and not all(group):
            raise ValueError(
                "attempts, last_error and next_attempt_at must be mapped together (or all left out, "
                "in which case retry state is kept in the outbox_relay_attempt table)"
            )
        return self

    @property
    def inline_retry_state(self) -> bool:
        return self.attempts is not None


class Statuses(_Strict):
    """Logical status -> value stored in the status column (strings or integers)."""

    new: StatusValue = "NEW"
    sent: StatusValue = "SENT"
    confirmed: StatusValue | None = "CONFIRMED"
    failed: StatusValue | None = "FAILED"

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        values = [v for v in (self.new, self.sent, self.confirmed, self.failed) if v is not None]
        if len(set(values)) != len(values):
            raise ValueError(f"status values must be distinct, got {values}")
        return self


class Payload(_Strict):
    """Where the message body comes from: one column, or a JSON object built from columns."""

    format: Literal["json", "raw"] = Field(
        "json",
        description="'json': the body must be valid JSON (rows that are not fail); 'raw': bytes as-is.",
    )
    columns: tuple[str, ...] = Field(
        (), description="Build the body as a JSON object of these columns instead of a payload column."
    )

    @field_validator("columns")
    @classmethod
    def _identifiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_identifier(v) for v in value)


class Retry(_Strict):
    max_attempts: int = Field(5, ge=1, le=1000, description="Attempts before a row becomes FAILED.")
    backoff_seconds: float = Field(10, ge=0, description="First retry delay; doubles per attempt.")
    max_backoff_seconds: float = Field(3600, ge=0)


class Confirmation(_Strict):
    topic: str = Field(description="Result topic the consumers answer on.")
    group_id: str | None = Field(None, description="Consumer group; default 'outbox-relay-<service>'.")
    partitions: int = Field(1, ge=1, le=10000)

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return check_topic(value)


class Retention(_Strict):
    days: float = Field(7, gt=0, description="Age after which terminal rows are deleted.")
    failed_days: float = Field(30, gt=0, description="Age after which FAILED rows are deleted.")
    chunk_size: int = Field(1000, ge=1, le=100_000, description="Rows deleted per statement.")


class RowFilter(_Strict):
    """Only the rows whose ``column`` equals ``equals``: several services share one table."""

    column: str = Field(description="Column naming the subsystem a row belongs to.")
    equals: StatusValue = Field(description="This service's value in that column.")

    @field_validator("column")
    @classmethod
    def _column(cls, value: str) -> str:
        return check_identifier(value)


class ConsumerColumns(_Strict):
    """Logical field -> column of the consumers' table (the record each consumer writes per message)."""

    message_id: str = "message_id"
    status: str = "status"
    error: str | None = "error_text"
    created_at: str | None = Field("created_at", description="When the consumer wrote the row (retention).")

    @field_validator("*")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value)


class ConsumerStatuses(_Strict):
    pending: StatusValue = 0
    consumed: StatusValue = 1
    failed: StatusValue = 2

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if len({self.pending, self.consumed, self.failed}) != 3:
            raise ValueError("pending, consumed and failed must be distinct values")
        return self


class Reconciliation(_Strict):
    """Compare the outbox table with the consumers' table for a time window (report + re-delivery)."""

    consumer_table: str = Field(description="Consumers' table ('table' or 'schema.table').")
    connection: str | None = Field(
        None, description="Airflow connection id of the consumers' database; default connections.db."
    )
    columns: ConsumerColumns = ConsumerColumns()
    statuses: ConsumerStatuses = ConsumerStatuses()
    row_filter: RowFilter | None = Field(None, description="Only this consumer's rows of a shared table.")
    grace_seconds: float = Field(
        300, ge=0, description="A sent row not consumed after this long (since sent) is reported missing."
    )
    window_hours: float = Field(24, gt=0, description="Default window when no start is given.")
    schedule: str | None = Field("@daily", description="Schedule of the reconciliation DAG.")
    on_discrepancy: Literal["fail", "warn"] = Field(
        "fail", description="The reconciliation task fails (default) or only logs a warning."
    )
    max_listed: int = Field(1000, ge=1, le=1_000_000, description="Ids listed per category in a report.")
    chunk_size: int = Field(2000, ge=1, le=50_000, description="Outbox rows compared per query.")
    retention: Retention | None = Field(
        None, description="Delete consumed (days) and failed (failed_days) consumer rows; null = keep."
    )

    @field_validator("consumer_table")
    @classmethod
    def _table(cls, value: str) -> str:
        return check_table_name(value)

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @model_validator(mode="after")
    def _retention_age(self) -> Self:
        if self.retention is not None and self.columns.created_at is None:
            raise ValueError("reconciliation.retention needs reconciliation.columns.created_at to age rows")
        return self


class Kafka(_Strict):
    """Producer timing; everything else (servers, TLS, SASL) comes from the Airflow connection."""

    delivery_timeout_ms: int = Field(30_000, ge=1000, description="librdkafka message.timeout.ms.")
    flush_timeout_seconds: float = Field(45, gt=0, description="Longest wait for delivery reports.")
    linger_ms: int = Field(5, ge=0, le=10_000)
    partitions: int = Field(3, ge=1, le=10_000, description="Partitions for topics the relay creates.")
    replication_factor: int = Field(1, ge=1, le=10)


class ServiceConfig(_Strict):
    """A registered service: one outbox table relayed by its own DAGs."""

    service: str = Field(description="Service name; lower-case, used in DAG ids and headers.")
    description: str = ""
    owner: str = "data-platform"
    connections: Connections = Connections()
    table: str = Field("outbox_message", description="Outbox table ('table' or 'schema.table').")
    topic: str | None = Field(None, description="Topic for rows without a topic column.")
    topics: tuple[str, ...] = Field(
        (), description="Every topic rows may name; created/checked by the relay."
    )
    dead_letter_topic: str | None = None
    event_type: str | None = Field(None, description="Constant event type when the table has no such column.")
    columns: Columns = Columns.model_validate(STANDARD_COLUMNS)
    statuses: Statuses = Statuses()
    payload: Payload = Payload()
    batch_size: int = Field(1000, ge=1, le=50_000)
    threshold_seconds: float = Field(0, ge=0, description="Only relay rows at least this old (DB clock).")
    time_budget_seconds: float = Field(300, gt=0, description="A relay run stops claiming after this.")
    poll_interval_seconds: float | None = Field(
        None,
        gt=0,
        le=60,
        description="Low-latency mode: a run that drained the table keeps polling at this interval until "
        "its time budget is spent (pair with schedule '@continuous'). Unset: a run ends once drained.",
    )
    pipelining: bool = Field(
        True,
        description="Claim the next batch and mark the previous one SENT (on their own connections) while "
        "the current batch is produced. A crash can then leave up to two batches acknowledged but not yet "
        "marked SENT (republished by the next run, deduped by consumers); false keeps that to one batch.",
    )
    relay_lock_wait_seconds: float = Field(
        30, ge=0, description="How long a relay run waits for another relay of the same table to finish."
    )
    schedule: str | None = Field("* * * * *", description="Cron expression or preset for the relay DAG.")
    confirm_schedule: str | None = "* * * * *"
    cleanup_schedule: str | None = "@daily"
    start_paused: bool = Field(
        False, description="Create the service's DAGs paused (Airflow's own default is paused)."
    )
    db_time_zone: str = Field("+00:00", description="Session time zone the service's timestamps are in.")
    retry: Retry = Retry()
    confirmation: Confirmation | None = None
    retention: Retention | None = Retention()
    kafka: Kafka = Kafka()
    row_filter: RowFilter | None = Field(
        None, description="Only rows whose column equals this value (several services share one table)."
    )
    reconciliation: Reconciliation | None = None

    @field_validator("service")
    @classmethod
    def _service(cls, value: str) -> str:
        if not _SERVICE.match(value):
            raise ValueError(f"{value!r} must match {_SERVICE.pattern} (it becomes part of DAG ids)")
        return value

    @field_validator("table")
    @classmethod
    def _table(cls, value: str) -> str:
        return check_table_name(value)

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

    @field_validator("db_time_zone")
    @classmethod
    def _tz(cls, value: str) -> str:
        if not re.match(r"^[+-]\d{2}:\d{2}$", value):
            raise ValueError(f"{value!r} must be a UTC offset like '+00:00'")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        self._check_topics()
        self._check_payload()
        self._check_statuses()
        if self.threshold_seconds > 0 and self.columns.created_at is None:
            raise ValueError("threshold_seconds needs columns.created_at (the table has no creation time)")
        self._check_reconciliation()
        if self.retention is not None and self.columns.created_at is None and self.columns.updated_at is None:
            raise ValueError(
                "retention needs columns.created_at or columns.updated_at to age rows; "
                "set 'retention: null' to disable it"
            )
        return self

    def _check_topics(self) -> None:
        if self.columns.topic is None and self.topic is None:
            raise ValueError("set 'topic' (or map columns.topic): the relay must know where rows go")

    def _check_payload(self) -> None:
        if self.payload.columns and self.columns.payload is not None:
            raise ValueError("use either columns.payload or payload.columns, not both")
        if not self.payload.columns and self.columns.payload is None:
            raise ValueError("map columns.payload or list payload.columns to build the body")

    def _check_statuses(self) -> None:
        if self.confirmation is not None and self.statuses.confirmed is None:
            raise ValueError("confirmation is configured, so statuses.confirmed must be set")
        if self.columns.inline_retry_state and self.statuses.failed is None:
            raise ValueError(
                "statuses.failed must be set when attempts/last_error/next_attempt_at are mapped "
                "(a row out of attempts needs a FAILED value)"
            )
        if self.confirmation is not None and self.statuses.failed is None:
            raise ValueError("confirmation is configured, so statuses.failed must be set")

    def _check_reconciliation(self) -> None:
        if self.columns.retry_flag is not None and self.statuses.failed is None:
            raise ValueError(
                "columns.retry_flag needs statuses.failed (a row that may not retry ends FAILED)"
            )
        if self.reconciliation is None:
            return
        if self.columns.created_at is None:
            raise ValueError(
                "reconciliation needs columns.created_at (the window selects rows by creation time)"
            )
        if (
            self.reconciliation.retention
            and self.retention
            and self.reconciliation.retention.days < self.retention.days
        ):
            raise ValueError(
                "reconciliation.retention.days must be >= retention.days: consumer records deleted before "
                "the outbox rows would be reported as never consumed"
            )

    # --- derived values -------------------------------------------------------------

    @property
    def all_topics(self) -> tuple[str, ...]:
        """Every topic the relay produces to (or expects), in a stable order."""
        names = [*self.topics]
        for extra in (self.topic, self.dead_letter_topic):
            if extra and extra not in names:
                names.append(extra)
        return tuple(names)

    @property
    def confirmation_group_id(self) -> str:
        if self.confirmation is None:
            raise ValueError(f"service {self.service!r} has no confirmation topic")
        return self.confirmation.group_id or f"outbox-relay-{self.service}"

    @property
    def terminal_statuses(self) -> tuple[StatusValue, ...]:
        """Statuses retention may delete after ``retention.days``."""
        if self.confirmation is None:
            return (self.statuses.sent,)
        assert self.statuses.confirmed is not None
        return (self.statuses.confirmed,)
