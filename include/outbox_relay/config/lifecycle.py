"""What happens after a row is sent: confirmations, retention, reconciliation with the consumers' table."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from outbox_relay.config.fields import StatusValue, Strict, check_schedule, check_topic
from outbox_relay.config.identifiers import TableNameField, check_identifier
from outbox_relay.config.table import RowFilter


class Confirmation(Strict):
    topic: str = Field(description="Result topic the consumers answer on.")
    group_id: str | None = Field(
        None, description="Consumer group of the confirmations DAG; `null`: `outbox-relay-<service>`."
    )
    partitions: int = Field(
        1, ge=1, le=10000, description="Partitions of the result topic if the relay creates it."
    )

    @field_validator("topic")
    @classmethod
    def _topic(cls, value: str) -> str:
        return check_topic(value)


class Retention(Strict):
    days: float = Field(
        7,
        gt=0,
        description="Age in days after which terminal rows (`confirmed`, or `sent` without confirmation) are "
        "deleted.",
    )
    failed_days: float = Field(30, gt=0, description="Age in days after which `failed` rows are deleted.")
    chunk_size: int = Field(1000, ge=1, le=100_000, description="Rows deleted per statement.")


class ConsumerColumns(Strict):
    """Logical field -> column of the consumers' table (the record each consumer writes per message)."""

    message_id: str = Field("message_id", description="The message id the consumer recorded.")
    status: str = Field("status", description="The record's status (values: `reconciliation.statuses`).")
    error: str | None = Field(
        "error_text", description="The consumer's error for a failed message; `null`: it keeps none."
    )
    created_at: str | None = Field(
        "created_at",
        description="When the consumer wrote the row (reconciliation's retention ages records by it); `null`: "
        "it keeps none.",
    )

    @field_validator("*")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        return None if value is None else check_identifier(value)


class ConsumerStatuses(Strict):
    pending: StatusValue = Field(
        0, description="Received, not handled yet: reported like no record at all; retention keeps it."
    )
    consumed: StatusValue = Field(1, description="Handled.")
    failed: StatusValue = Field(2, description="Handling failed.")

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        if len({self.pending, self.consumed, self.failed}) != 3:
            raise ValueError("pending, consumed and failed must be distinct values")
        return self


class Reconciliation(Strict):
    """Compare the outbox table with the consumers' table for a time window (report + re-delivery)."""

    consumer_table: TableNameField = Field(
        description="Consumers' table, in the same forms as `table`: `table`, `schema.table`, a "
        "backtick-quoted name or `{schema: ..., name: ...}`."
    )
    connection: str | None = Field(
        None, description="Airflow connection id of the consumers' database; `null`: `connections.db`."
    )
    columns: ConsumerColumns = Field(ConsumerColumns(), description="The consumers' table's columns.")
    statuses: ConsumerStatuses = Field(ConsumerStatuses(), description="Its stored status values.")
    row_filter: RowFilter | None = Field(None, description="Only this consumer's records of a shared table.")
    grace_seconds: float = Field(
        300,
        ge=0,
        description="A sent row without a consumer record is reported only this long (seconds) after it was "
        "sent.",
    )
    window_hours: float = Field(24, gt=0, description="Window when no start is given (CLI, manual DAG runs).")
    schedule: str | None = Field(
        "@daily", description="Schedule of the reconcile DAG (a scheduled run checks its data interval)."
    )
    on_discrepancy: Literal["fail", "warn"] = Field(
        "fail",
        description="`fail`: the reconcile task fails while something is missing; `warn`: it only logs.",
    )
    max_listed: int = Field(
        1000,
        ge=1,
        le=1_000_000,
        description="Ids listed per category in a report (counts are always complete).",
    )
    chunk_size: int = Field(2000, ge=1, le=50_000, description="Outbox rows compared per query.")
    retention: Retention | None = Field(
        None,
        description="Delete the consumers' consumed (`days`) and failed (`failed_days`) records, in the "
        "cleanup DAG; `days` must be >= `retention.days`. `null`: keep them.",
    )

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, value: str | None) -> str | None:
        return check_schedule(value)

    @model_validator(mode="after")
    def _retention_age(self) -> Self:
        if self.retention is not None and self.columns.created_at is None:
            raise ValueError("reconciliation.retention needs reconciliation.columns.created_at to age rows")
        return self


DEADLINE_MARGIN_SECONDS = 300  # a relay run's default deadline: its time budget plus this (queueing, start)


class DeadlineCallback(Strict):
    """An Airflow ``AsyncCallback``: a top-level async callable (or a notifier class) importable in the
    triggerer, with keyword arguments (Airflow adds the run's ``context``)."""

    path: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$",
        description="Dotted import path of the async callable or notifier class, e.g. "
        "`airflow.providers.slack.notifications.slack.SlackNotifier`.",
    )
    kwargs: dict[str, Any] = Field(default_factory=dict, description="Keyword arguments of the callable.")


MIN_ANSWERS_FOR_SHARE = 20  # a share of fewer answers says little (1 FAILED of 2 is not a trend)


class Slo(Strict):
    """What the relay and confirmations DAGs' ``check_health`` tasks hold each run to; a breach turns the run
    red."""

    max_oldest_new_seconds: float | None = Field(
        None,
        gt=0,
        description="The next row to send may have waited at most this long (DB clock; needs "
        "`columns.created_at`); `null`: no limit.",
    )
    max_unconfirmed_seconds: float | None = Field(
        None,
        gt=0,
        description="The oldest sent-but-unconfirmed row may be at most this old (needs `confirmation`); "
        "`null`: no limit.",
    )
    fail_on_given_up_rows: bool = Field(
        True,
        description="A run that gave up on rows (FAILED, dead-lettered) is red, after its work is committed.",
    )
    max_failed_answer_share: float | None = Field(
        0.1,
        gt=0,
        le=1,
        description="Consumers' FAILED answers may be at most this share of their answers in the last hour "
        f"(counted once the hour has {MIN_ANSWERS_FOR_SHARE} answers); beyond it the confirmations run is red. "
        "`null`: no limit.",
    )
    max_failed_answers_per_hour: int | None = Field(
        None,
        ge=0,
        description="Consumers may answer FAILED at most this many times in the last hour; beyond it the "
        "confirmations run is red. `null`: no limit.",
    )
    max_relay_run_seconds: float | None = Field(
        None,
        ge=0,
        description="A relay run still queued or running this long after it was queued misses its Airflow "
        "Deadline Alert (the triggerer calls `deadline_callback`). `null`: `time_budget_seconds` + "
        f"{DEADLINE_MARGIN_SECONDS} s; 0: no deadline.",
    )
    deadline_callback: DeadlineCallback | None = Field(
        None,
        description="What the triggerer calls when a relay run misses its deadline; `null`: the project's own "
        "callback, which logs a warning and counts `outbox_relay.<service>.relay_run_overdue`.",
    )
