"""How a registered table maps onto the relay's logical fields: columns, status values, body, row filter.

When ``columns`` is omitted the project's standard table is assumed (``outbox-relay ddl`` prints its DDL)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator
from typing_extensions import Self

from outbox_relay.config.fields import StatusValue, Strict
from outbox_relay.config.identifiers import check_identifier

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


class Columns(Strict):
    """Logical field -> column name. ``None`` means the table has no such column."""

    id: str = Field(description="Primary key; rows are claimed in this order (numeric or textual keys).")
    status: str | None = Field(
        description="Status column; `null` for a table without one (insert-only outboxes): then `completion` "
        "must be `delete`, `archive` or `timestamp` (with `columns.sent_at`)."
    )
    message_id: str | None = Field(
        None, description="Unique message id; when absent it is derived as `<service>:<table>:<id>`."
    )
    key: str | None = Field(
        None,
        description="Business/aggregate id used as the Kafka message key (and for per-key order); a `NULL` "
        "value fails the row. Absent: messages without a key.",
    )
    event_type: str | None = Field(
        None, description="Event type column (`outbox-event-type` header); else the service's `event_type`."
    )
    topic: str | None = Field(
        None, description="Per-row topic; when absent (or empty in a row) the service's `topic` is used."
    )
    payload: str | None = Field(None, description="Column holding the message body.")
    headers: str | None = Field(None, description="Column holding extra headers as a JSON object.")
    created_at: str | None = Field(
        None,
        description="Creation time; needed for `threshold_seconds`, backfill windows, and retention when "
        "there is no `updated_at`.",
    )
    attempts: str | None = Field(None, description="Retry counter.")
    last_error: str | None = Field(
        None, description="Last publish error, or the consumer's error for a `FAILED` answer."
    )
    next_attempt_at: str | None = Field(
        None,
        description="Earliest next attempt. `attempts`, `last_error` and `next_attempt_at` are mapped together "
        "or not at all (then the retry state is kept in the `outbox_relay_attempt` table). On the standard "
        "table it also holds the writer's `not_before` (a row with `attempts = 0`).",
    )
    not_before: str | None = Field(
        None,
        description="A `DATETIME`/`TIMESTAMP` column the writer fills with a time before which the row must "
        "not be sent (`NULL` = at once); later rows of its key wait behind it. Compared with the database "
        "clock (`NOW(6)`) in the relay's session time zone (`db_time_zone`), like `created_at`; `validate` "
        "refuses a column of another type. The standard table uses `next_attempt_at` for it.",
    )
    sent_at: str | None = Field(
        None,
        description="Set to `NOW(6)` when the broker acknowledged the row (marked `SENT`). With `completion: "
        "timestamp` the completion column: `NULL` while the row is pending.",
    )
    run_id: str | None = Field(None, description="Airflow run id that published the row.")
    confirmed_at: str | None = Field(
        None, description="Set when a confirmation (success or failure) is applied."
    )
    updated_at: str | None = Field(
        None,
        description="Retention age (preferred over `created_at`). The relay does not write it; map it only if "
        "the database maintains it (e.g. `ON UPDATE CURRENT_TIMESTAMP(6)`).",
    )
    partition: str | None = Field(
        None,
        description="Per-row Kafka partition; `NULL` = chosen by key. A negative/non-integer value or a "
        "partition the topic does not have fails the row with an error naming it.",
    )
    retry_flag: str | None = Field(
        None,
        description="Per-row retry switch: a row holding `0` becomes `failed` on its first failure; other "
        "values (or `NULL`) are retried. Needs `statuses.failed`.",
    )
    shard: str | None = Field(
        None,
        description="With `shards` > 1: a stored generated column holding the row's shard, "
        "`COALESCE(CRC32(key), 0) % shards`, indexed as `(status, shard, id)`, so each shard's claims read "
        "only its own rows (`outbox-relay validate` prints the `ALTER TABLE`).",
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


class Statuses(Strict):
    """Logical status -> value stored in the status column (strings or integers)."""

    new: StatusValue = Field("NEW", description="To be relayed.")
    sent: StatusValue = Field("SENT", description="Acknowledged by the broker.")
    confirmed: StatusValue | None = Field(
        "CONFIRMED", description="Consumer answered SUCCESS. `null` allowed only without `confirmation`."
    )
    failed: StatusValue | None = Field(
        "FAILED",
        description="Out of attempts, or consumer answered FAILED. `null` allowed only without `confirmation`.",
    )

    @model_validator(mode="after")
    def _distinct(self) -> Self:
        values = [v for v in (self.new, self.sent, self.confirmed, self.failed) if v is not None]
        if len(set(values)) != len(values):
            raise ValueError(f"status values must be distinct, got {values}")
        return self


class Payload(Strict):
    """Where the message body comes from: one column, or a JSON object built from columns."""

    format: Literal["json", "raw"] = Field(
        "json",
        description="`json`: the body must be valid JSON (rows that are not fail); `raw`: bytes as they are.",
    )
    columns: tuple[str, ...] = Field(
        (),
        description="Build the body as a JSON object of these columns instead of a payload column (exclusive "
        "with `columns.payload`; one of the two is required).",
    )

    @field_validator("columns")
    @classmethod
    def _identifiers(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(check_identifier(v) for v in value)


# $.a.b, $."a key", $.list[0]: member names and array indexes only (no wildcards: one value per row).
_JSON_PATH = re.compile(r'^\$(\.[A-Za-z_][A-Za-z0-9_]*|\."[^"\\\'`]+"|\[[0-9]+\])+$')


def check_json_path(path: str) -> str:
    if not isinstance(path, str) or not _JSON_PATH.match(path):
        raise ValueError(
            f'{path!r} is not a JSON path the relay reads: write $.name, $.outer.inner, $."odd name" or '
            "$.list[0] (no wildcards)"
        )
    return path


class JsonValue(Strict):
    """A value read from inside a JSON column, in SQL (JSON_EXTRACT), so the claim stays one statement."""

    column: Literal["payload", "headers"] = Field(
        "payload",
        description="Which mapped column holds the document: `columns.payload` or `columns.headers`.",
    )
    path: str = Field(description="JSON path of the value, e.g. `$.PARTITION_ID` or `$.Value.orderId`.")

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_json_path(value)


class JsonValues(Strict):
    """Values that live inside a JSON column rather than in columns of their own (Eventuate keeps the key
    in its headers JSON as PARTITION_ID; DotNetCore.CAP stores {"Headers": {...}, "Value": {...}}). The key,
    event type and message id may each be a list of places tried in order: the first one present (and not
    JSON null) wins, e.g. CAP's cap-kafka-key header, else its cap-msg-id."""

    key: JsonValue | list[JsonValue] | None = Field(
        None,
        description="The Kafka key, `{column: payload|headers, path: $.PARTITION_ID}` (Eventuate Tram keeps it "
        "in its headers JSON), or a list of such places tried in order; a row without it fails, naming them. "
        "Exclusive with `columns.key`.",
    )
    event_type: JsonValue | list[JsonValue] | None = Field(
        None, description="Same form: the event type header."
    )
    message_id: JsonValue | list[JsonValue] | None = Field(
        None,
        description="Same form, e.g. `{path: '$.Headers.\"cap-msg-id\"'}`. Lookups by message id (explain, "
        "replay, confirmations) then evaluate the path per row: prefer a column on big tables.",
    )
    body: str | None = Field(
        None,
        description="JSON path of the payload that is the message body, e.g. `$.Value` (DotNetCore.CAP's "
        "envelope).",
    )
    headers: str | None = Field(
        None,
        description="JSON path of an object in the payload whose members become Kafka headers, e.g. "
        "`$.Headers`. Exclusive with `columns.headers`.",
    )

    @field_validator("body", "headers")
    @classmethod
    def _paths(cls, value: str | None) -> str | None:
        return None if value is None else check_json_path(value)

    @field_validator("key", "event_type", "message_id")
    @classmethod
    def _chain(cls, value: JsonValue | list[JsonValue] | None) -> JsonValue | list[JsonValue] | None:
        if isinstance(value, list):
            if not value:
                raise ValueError("give at least one place to read it from, or leave it out")
            if len({v.column for v in value}) > 1:
                raise ValueError("the places tried in order must all be in one column (payload or headers)")
        return value

    def values(self) -> dict[str, tuple[JsonValue, ...]]:
        """Logical field -> the places it is read from, in order, for the fields read from JSON."""
        found: dict[str, tuple[JsonValue, ...]] = {}
        for name in ("key", "event_type", "message_id"):
            value = getattr(self, name)
            if value is not None:
                found[name] = tuple(value) if isinstance(value, list) else (value,)
        return found


class RowFilter(Strict):
    """Only the rows whose ``column`` equals ``equals``: several services share one table."""

    column: str = Field(description="Column naming the subsystem a row belongs to.")
    equals: StatusValue = Field(description="This service's value in that column.")

    @field_validator("column")
    @classmethod
    def _column(cls, value: str) -> str:
        return check_identifier(value)
