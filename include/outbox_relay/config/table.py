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

    id: str = Field(description="Primary key; rows are claimed in this order.")
    status: str | None = Field(
        description="Status column; null for a table without one (insert-only outboxes: completion delete, "
        "archive, or timestamp with columns.sent_at)."
    )
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
    not_before: str | None = Field(
        None,
        description="A time before which the row must not be sent (its writer's schedule); later rows of its "
        "key wait behind it. The standard table uses next_attempt_at for it.",
    )
    sent_at: str | None = Field(
        None, description="When the broker acknowledged the row; with completion: timestamp, NULL = pending."
    )
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
    shard: str | None = Field(
        None,
        description="With shards > 1: a generated column holding the row's shard, COALESCE(CRC32(key), 0) "
        "mod shards, indexed as (status, shard, id), so each shard's claims read only its own rows "
        "(`outbox-relay validate` prints the ALTER TABLE).",
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


class Payload(Strict):
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
        "payload", description="Which mapped column holds the document: columns.payload or columns.headers."
    )
    path: str = Field(description="JSON path of the value, e.g. $.PARTITION_ID or $.Value.orderId.")

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
        None, description="The Kafka key (or places tried in order); a row without it fails, naming them."
    )
    event_type: JsonValue | list[JsonValue] | None = None
    message_id: JsonValue | list[JsonValue] | None = Field(
        None, description="The message id (lookups by message id then read every row: prefer a column)."
    )
    body: str | None = Field(
        None, description="JSON path of the payload that is the message body, e.g. $.Value."
    )
    headers: str | None = Field(
        None,
        description="JSON path of an object in the payload whose members become Kafka headers, e.g. $.Headers.",
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
