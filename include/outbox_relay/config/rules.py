"""The service file's cross-field rules, each raising ``ValueError`` with the message the loader shows next
to the file's name (``ServiceConfig`` runs them in this order after its fields are read)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from outbox_relay.config.fields import CONFIRMATIONS_WAITING, check_event_schedule
from outbox_relay.config.table import Statuses

if TYPE_CHECKING:
    from outbox_relay.config.service import ServiceConfig

SHARD_COUNTS = (1, 2, 4, 8, 16, 32, 64)


def check_shards(config: ServiceConfig) -> None:
    if config.shards not in SHARD_COUNTS:
        raise ValueError(f"shards must be one of {', '.join(map(str, SHARD_COUNTS))}, got {config.shards}")
    if config.shards > 1 and config.columns.key is None and config.json_values.key is None:
        raise ValueError(
            "shards spreads rows by their key (CRC32(key) mod shards): map columns.key or json_values.key"
        )
    if config.columns.shard is not None and config.shards == 1:
        raise ValueError(
            "columns.shard is read by sharded relays only: set shards (2, 4, ... 64) or unmap it"
        )


def check_delivery(config: ServiceConfig) -> None:
    """A transactional producer refuses to start when a message may outlive its transaction."""
    kafka = config.kafka
    if config.delivery == "exactly_once" and kafka.delivery_timeout_ms > kafka.transaction_timeout_ms:
        raise ValueError(
            f"delivery: exactly_once needs kafka.delivery_timeout_ms ({kafka.delivery_timeout_ms}) <= "
            f"kafka.transaction_timeout_ms ({kafka.transaction_timeout_ms}): a message must not outlive its "
            "transaction"
        )


def check_event_driven(config: ServiceConfig) -> None:
    for name in ("schedule", "confirm_schedule", "cleanup_schedule"):
        check_event_schedule(name, getattr(config, name))
    if config.confirm_schedule == CONFIRMATIONS_WAITING and config.confirmation is None:
        raise ValueError(
            f"confirm_schedule: {CONFIRMATIONS_WAITING!r} watches the confirmation topic, but the service "
            "has no 'confirmation'"
        )


def check_slo(config: ServiceConfig) -> None:
    if (
        config.slo.max_oldest_new_seconds or config.slo.max_unconfirmed_seconds
    ) and config.columns.created_at is None:
        raise ValueError("slo ages need columns.created_at (the table has no creation time)")
    if config.slo.max_unconfirmed_seconds and config.confirmation is None:
        raise ValueError("slo.max_unconfirmed_seconds needs 'confirmation' (without it SENT is final)")


def check_inboxes(config: ServiceConfig) -> None:
    places = [(i.consumer, str(i.table), i.db or config.connections.db) for i in config.inboxes]
    repeated = sorted({p for p in places if places.count(p) > 1})
    if repeated:
        consumer, table, db = repeated[0]
        raise ValueError(f"inboxes lists consumer {consumer!r} of {table} on connection {db!r} twice")


def check_topics(config: ServiceConfig) -> None:
    if config.columns.topic is None and config.topic is None:
        raise ValueError("set 'topic' (or map columns.topic): the relay must know where rows go")


def check_completion(config: ServiceConfig) -> None:
    if (config.completion == "archive") != (config.archive_table is not None):
        raise ValueError(
            "completion: archive needs archive_table, and archive_table needs completion: archive"
        )
    if config.completion == "timestamp" and config.columns.sent_at is None:
        raise ValueError(
            "completion: timestamp records the acknowledgement in columns.sent_at: map it to the "
            "completion time column (NULL while the row is pending)"
        )
    if config.columns.status is None:
        check_status_less(config)
    if config.keeps_sent_rows:
        return
    for needs_sent_rows, name in (
        (config.confirmation, "confirmation"),
        (config.reconciliation, "reconciliation"),
    ):
        if needs_sent_rows is not None:
            raise ValueError(
                f"completion: {config.completion} keeps no SENT rows in the table, which {name} works on: "
                "use completion: update"
            )


def check_status_less(config: ServiceConfig) -> None:
    """A table without a status column: pending means the row exists (delete, archive) or its
    completion time is NULL (timestamp). FAILED lives in the attempt table; nothing records a
    consumer's confirmation."""
    if config.completion == "update":
        raise ValueError(
            "columns.status is null, so 'completion: update' has no status to set: use completion: "
            "delete, archive, or timestamp (with columns.sent_at)"
        )
    if "statuses" in config.model_fields_set:
        raise ValueError(
            "columns.status is null: a table without a status column has no status values; remove 'statuses'"
        )
    for needs_status, name in (
        (config.confirmation, "confirmation"),
        (config.reconciliation, "reconciliation"),
        (config.columns.retry_flag, "columns.retry_flag"),
        (config.columns.attempts, "columns.attempts/last_error/next_attempt_at"),
    ):
        if needs_status is not None:
            raise ValueError(
                f"columns.status is null, but {name} records outcomes in the status column: map a status "
                "column, or drop it (retry state then lives in the outbox_relay_attempt table)"
            )
    # Virtual statuses: the SQL reads NEW/SENT from the row's existence or its completion time.
    object.__setattr__(config, "statuses", Statuses(confirmed=None, failed=None))


def check_json_values(config: ServiceConfig) -> None:
    jv = config.json_values
    for field_name, (value, *_) in jv.values().items():
        if getattr(config.columns, field_name) is not None:
            raise ValueError(
                f"{field_name} is mapped both as columns.{field_name} and as json_values.{field_name}: keep one"
            )
        if getattr(config.columns, value.column) is None:
            raise ValueError(f"json_values.{field_name} reads columns.{value.column}, which is not mapped")
    if (jv.body or jv.headers) and (config.columns.payload is None or config.payload.format != "json"):
        raise ValueError("json_values.body and .headers read the payload: map columns.payload (format json)")
    if jv.headers and config.columns.headers is not None:
        raise ValueError("headers come from columns.headers or json_values.headers: keep one")


def check_payload(config: ServiceConfig) -> None:
    if config.payload.columns and config.columns.payload is not None:
        raise ValueError("use either columns.payload or payload.columns, not both")
    if not config.payload.columns and config.columns.payload is None:
        raise ValueError("map columns.payload or list payload.columns to build the body")


def check_statuses(config: ServiceConfig) -> None:
    if config.confirmation is not None and config.statuses.confirmed is None:
        raise ValueError("confirmation is configured, so statuses.confirmed must be set")
    if config.columns.inline_retry_state and config.statuses.failed is None:
        raise ValueError(
            "statuses.failed must be set when attempts/last_error/next_attempt_at are mapped "
            "(a row out of attempts needs a FAILED value)"
        )
    if config.confirmation is not None and config.statuses.failed is None:
        raise ValueError("confirmation is configured, so statuses.failed must be set")


def check_reconciliation(config: ServiceConfig) -> None:
    if config.columns.retry_flag is not None and config.statuses.failed is None:
        raise ValueError("columns.retry_flag needs statuses.failed (a row that may not retry ends FAILED)")
    if config.reconciliation is None:
        return
    if config.columns.created_at is None:
        raise ValueError("reconciliation needs columns.created_at (the window selects rows by creation time)")
    if (
        config.reconciliation.retention
        and config.retention
        and config.reconciliation.retention.days < config.retention.days
    ):
        raise ValueError(
            "reconciliation.retention.days must be >= retention.days: consumer records deleted before "
            "the outbox rows would be reported as never consumed"
        )
