"""Check a service config against the live database and broker (the ``validate``/``plan`` CLI)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from outbox_relay.config import ServiceConfig
from outbox_relay.ids import id_order
from outbox_relay.kafka.topics import missing_topics, service_topics
from outbox_relay.store.ddl import has_standard_shape
from outbox_relay.store.introspection import (
    add_index_ddl,
    add_shard_column_ddl,
    column_types,
    create_like_ddl,
    indexes,
    not_null_columns,
    sample_values,
)
from outbox_relay.store.naming import (
    ATTEMPT_TABLE,
    LOCK_BUSY_TABLE,
    PROGRESS_TABLE,
    REPLAY_TABLE,
    SENT_RANGE_TABLE,
    split_table_name,
)
from outbox_relay.store.outbox import OutboxStore


@dataclass
class CheckReport:
    service: str
    problems: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_database(conn: Connection, config: ServiceConfig, report: CheckReport) -> None:
    columns = column_types(conn, config.table)
    if not columns:
        report.problems.append(f"table {config.table} does not exist (or is not visible to this connection)")
        if has_standard_shape(config):
            report.fixes.append(_create_tables(config))
        return
    mapped = {k: v for k, v in config.columns.model_dump().items() if v is not None}
    fields = [(f"columns.{k}", v) for k, v in mapped.items()] + [
        ("payload.columns", c) for c in config.payload.columns
    ]
    if config.row_filter is not None:
        fields.append(("row_filter.column", config.row_filter.column))
    for field_name, column in fields:
        if column.lower() not in columns:
            report.problems.append(f"column {column!r} ({field_name}) not found in {config.table}")
    _check_time_columns(conn, config, columns, report)
    _check_completion_column(conn, config, report)
    _check_value_columns(config, columns, report)
    _check_claim_order(conn, config, columns, report)
    # The scan is `status = ? ORDER BY <claim order>` (the primary key, or order_by then it); with a
    # row_filter the filter column leads. InnoDB ends every index with the primary key, so an index on
    # the leading columns alone serves a claim in primary-key order.
    found = indexes(conn, config.table)
    want = [c.lower() for c in config.scan_index]
    if not _has_index(found, want, config):
        report.problems.append(
            f"no index starting with ({', '.join(want)}): every scan would read the whole table"
        )
        report.fixes.append(add_index_ddl(config.table, _index_name(config, want), want))
    _check_shard_column(config, found, report)
    _check_consumer_table(conn, config, report)
    _check_archive_table(conn, config, columns, report)
    _check_shared_tables(conn, config, report)
    report.fixes[:] = dict.fromkeys(report.fixes)  # one command creates every missing table: say it once


def _check_shared_tables(conn: Connection, config: ServiceConfig, report: CheckReport) -> None:
    """The project's tables every service shares, each when this service needs it."""
    needed = {
        ATTEMPT_TABLE: (
            not config.columns.inline_retry_state,
            f"retry state table {ATTEMPT_TABLE} is missing (this table has no attempts columns)",
        ),
        REPLAY_TABLE: (
            True,
            f"row history table {REPLAY_TABLE} is missing (replays and backfill republishes record every row "
            "they send again there)",
        ),
        LOCK_BUSY_TABLE: (
            True,
            f"table {LOCK_BUSY_TABLE} is missing (relay runs that find the relay lock held are counted there, so "
            "that a wedged holder fails the run instead of giving green runs that relay nothing)",
        ),
        PROGRESS_TABLE: (
            config.delivery == "exactly_once",
            f"table {PROGRESS_TABLE} is missing (delivery: exactly_once records each batch's Kafka transaction "
            "there with its rows; the relay refuses to start without it)",
        ),
    }
    for table, (wanted, problem) in needed.items():
        if wanted and not column_types(conn, table):
            report.problems.append(problem)
            report.fixes.append(_create_tables(config))
    if OutboxStore(config).sent_ranges.writes and not column_types(conn, SENT_RANGE_TABLE):
        report.notes.append(
            f"table {SENT_RANGE_TABLE} is missing, so the relay writes its run id into every row it marks SENT "
            "(about a quarter slower on MariaDB than one range record per batch); create it: "
            f"{_create_tables(config)}"
        )


def _create_tables(config: ServiceConfig) -> str:
    """The command that creates what is missing of the project's tables (leaving existing ones as they are);
    the outbox table itself only when it has the standard shape."""
    if has_standard_shape(config):
        return f"outbox-relay ddl --service {config.service} --apply"
    return f"outbox-relay ddl --service {config.service} --shared-only --apply"


ID_SAMPLE = 200  # primary-key values read to tell random ids from time-ordered ones


def _check_claim_order(
    conn: Connection, config: ServiceConfig, columns: dict[str, str], report: CheckReport
) -> None:
    """Rows are claimed in primary-key order unless ``order_by`` says otherwise: by random ids (UUIDv4)
    that is no order at all, and rows of one key go out in any order. Integer keys (auto-increment,
    Snowflakes) and time-ordered ids (UUIDv7, ULID) are creation order."""
    id_column = config.columns.id
    kind = columns.get(id_column.lower(), "").lower()
    if config.order_by or not config.per_key_order or kind in INTEGER_TYPES:
        return
    verdict = id_order(sample_values(conn, str(config.table), id_column, ID_SAMPLE))
    created = config.columns.created_at
    by_time = (
        f"order_by: [{created}]" if created else "order_by: [<the column with each row's creation time>]"
    )
    fix = (
        f"set {by_time} (validate then prints the index it needs), or, if its consumers do not need per-key "
        "order, per_key_order: false"
    )
    if verdict == "random":
        report.problems.append(
            f"rows of {config.table} are claimed in the order of its primary key {id_column!r} ({kind}), whose "
            "values are random UUIDs: rows of one key would reach Kafka in any order"
        )
        report.fixes.append(fix)
    elif verdict == "unknown":
        report.notes.append(
            f"rows of {config.table} are claimed in the order of its primary key {id_column!r} ({kind}): per-key "
            "order holds only if its values sort in creation order (UUIDv7, ULID, a time-ordered id); if they "
            f"do not, {fix}"
        )


def _has_index(found: dict[str, list[str]], want: list[str], config: ServiceConfig) -> bool:
    lead = want[: len(want) - len(config.claim_order)]
    by_key_only = len(config.claim_order) == 1
    return any(
        cols[: len(want)] == want or (by_key_only and lead and cols == lead) for cols in found.values()
    )


def _index_name(config: ServiceConfig, columns: list[str]) -> str:
    return re.sub(r"\W", "_", f"ix_{split_table_name(config.table)[1]}_{'_'.join(columns)}")[:64]


def _check_shard_column(config: ServiceConfig, found: dict[str, list[str]], report: CheckReport) -> None:
    """A sharded table's claims read every pending row's key unless an indexed shard column names each
    row's shard: suggest one, or check that the mapped one is indexed for the shards' scans."""
    if config.shards == 1:
        return
    shard_sql = OutboxStore(config).table.shard_of_row
    if config.shard_scan_index is None:
        want = [c.lower() for c in config.scan_index_for("outbox_shard")]
        ddl = add_shard_column_ddl(config.table, "outbox_shard", shard_sql, _index_name(config, want), want)
        report.notes.append(
            f"shards: {config.shards}: each shard's claims read the key of every pending row and skip the other "
            f"shards' rows. An indexed shard column lets each read only its own: {ddl} Then map "
            "columns.shard: outbox_shard (after a change of shards, MODIFY it to the new count)."
        )
        return
    want = [c.lower() for c in config.shard_scan_index]
    if not _has_index(found, want, config):
        report.problems.append(
            f"no index starting with ({', '.join(want)}): the shards' claims would read every pending row"
        )
        report.fixes.append(add_index_ddl(config.table, _index_name(config, want), want))


def _check_completion_column(conn: Connection, config: ServiceConfig, report: CheckReport) -> None:
    """With ``completion: timestamp`` a pending row holds NULL in the completion column: a NOT NULL column
    would make every row look done (or every insert fail)."""
    sent_at = config.columns.sent_at
    if config.completion != "timestamp" or sent_at is None:
        return
    if sent_at.lower() in not_null_columns(conn, config.table):
        report.problems.append(
            f"columns.sent_at {sent_at!r} is NOT NULL, but with completion: timestamp a pending row holds NULL "
            "there; map the column that stays NULL until the row is sent"
        )


INTEGER_TYPES = frozenset({"tinyint", "smallint", "mediumint", "int", "integer", "bigint", "decimal"})
TIME_TYPES = frozenset({"datetime", "timestamp"})
WRITTEN_TIMES = ("sent_at", "confirmed_at", "updated_at", "next_attempt_at")  # the relay writes NOW(6)
MILLISECONDS_FROM = 100_000_000_000  # epoch values this large are milliseconds (seconds: year 5138)


def _check_time_columns(
    conn: Connection, config: ServiceConfig, columns: dict[str, str], report: CheckReport
) -> None:
    """Time columns hold what the config says they hold: a number compared with a DATETIME is silently
    wrong (a threshold of an hour lets every row through), so a mismatch is a problem, with its fix."""
    cols = config.columns
    if cols.created_at is not None and cols.created_at.lower() in columns:
        _check_created_at(conn, config, columns[cols.created_at.lower()], report)
    for logical in (*WRITTEN_TIMES, "not_before"):
        name = getattr(cols, logical)
        kind = columns.get(str(name).lower()) if name else None
        if kind is not None and kind.lower() not in TIME_TYPES:
            use = (
                "compares it with the database clock"
                if logical == "not_before"
                else "writes the time into it"
            )
            report.problems.append(
                f"columns.{logical} {name!r} is {kind}: the relay {use} (NOW(6)); map a "
                f"DATETIME(6) or TIMESTAMP(6) column, or leave columns.{logical} unmapped"
            )


TEXT_TYPES = frozenset({"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "enum", "set"})
PAYLOAD_TYPES = TEXT_TYPES | frozenset(
    {"json", "tinyblob", "blob", "mediumblob", "longblob", "binary", "varbinary"}
)


def _check_value_columns(config: ServiceConfig, columns: dict[str, str], report: CheckReport) -> None:
    """The status column can hold the configured status values; the payload column can hold a body."""
    cols, statuses = config.columns, config.statuses
    kind = columns.get(cols.status.lower(), "").lower() if cols.status else ""
    values = [v for v in (statuses.new, statuses.sent, statuses.confirmed, statuses.failed) if v is not None]
    words = [v for v in values if isinstance(v, str) and not v.lstrip("-").isdigit()]
    if kind in INTEGER_TYPES and words:
        report.problems.append(
            f"columns.status {cols.status!r} is {kind} but statuses are words ({', '.join(map(repr, words))}): "
            "MySQL would compare them as 0; set statuses to the numbers the column stores "
            "(e.g. statuses: {new: 0, sent: 1, confirmed: null, failed: null})"
        )
    payload = cols.payload
    kind = columns.get(payload.lower(), "").lower() if payload else ""
    if payload and kind and kind not in PAYLOAD_TYPES:
        report.problems.append(
            f"columns.payload {payload!r} is {kind}, which cannot hold a message body: map a text, JSON or "
            "blob column"
        )


def _check_created_at(conn: Connection, config: ServiceConfig, kind: str, report: CheckReport) -> None:
    name, unit, kind = config.columns.created_at, config.created_at_unit, kind.lower()
    if kind in TIME_TYPES and unit != "datetime":
        report.problems.append(
            f"created_at_unit is {unit} but columns.created_at {name!r} is {kind}: remove created_at_unit "
            "(DATETIME and TIMESTAMP columns are read as times)"
        )
    elif kind in INTEGER_TYPES and unit == "datetime":
        report.problems.append(
            f"columns.created_at {name!r} is {kind}: it holds numbers, which the relay would compare with "
            f"times (the threshold, backfill windows and retention would be wrong); set created_at_unit: "
            f"{_epoch_unit_of(conn, config)} (integer seconds: epoch_s, milliseconds: epoch_ms)"
        )
    elif kind not in TIME_TYPES | INTEGER_TYPES:
        report.problems.append(
            f"columns.created_at {name!r} is {kind}, which cannot hold a creation time: map a DATETIME / "
            "TIMESTAMP column, or an integer epoch column with created_at_unit: epoch_s or epoch_ms"
        )


def _epoch_unit_of(conn: Connection, config: ServiceConfig) -> str:
    """epoch_ms or epoch_s, judged from the newest row's value (a primary-key lookup)."""
    newest = OutboxStore(config).table.newest_value(conn, "created_at")
    if newest is None:
        return "epoch_ms or epoch_s (the table is empty: judge by what it stores)"
    return "epoch_ms" if abs(int(newest)) >= MILLISECONDS_FROM else "epoch_s"


def _check_archive_table(
    conn: Connection, config: ServiceConfig, columns: dict[str, str], report: CheckReport
) -> None:
    """completion: archive copies rows with ``INSERT ... SELECT *``: the archive needs the same columns, in
    the same order, of the same types."""
    archive = config.archive_table
    if archive is None:
        return
    found = column_types(conn, archive)
    if found == columns:
        return
    if not found:
        report.problems.append(f"archive_table {archive} does not exist")
    else:
        report.problems.append(
            f"archive_table {archive} differs from {config.table} (columns, their order or types): "
            f"{list(found.items())} against {list(columns.items())}"
        )
    report.fixes.append(create_like_ddl(archive, config.table))


def _check_consumer_table(conn: Connection, config: ServiceConfig, report: CheckReport) -> None:
    """The reconciliation's consumer table, when it is reachable through the same connection."""
    rec = config.reconciliation
    if rec is None or rec.connection not in (None, config.connections.db):
        return
    columns = column_types(conn, rec.consumer_table)
    if not columns:
        report.problems.append(f"reconciliation.consumer_table {rec.consumer_table} does not exist")
        return
    wanted = [(f"reconciliation.columns.{k}", v) for k, v in rec.columns.model_dump().items() if v]
    if rec.row_filter is not None:
        wanted.append(("reconciliation.row_filter.column", rec.row_filter.column))
    for field_name, column in wanted:
        if column.lower() not in columns:
            report.problems.append(f"column {column!r} ({field_name}) not found in {rec.consumer_table}")


def check_broker(admin: Any, config: ServiceConfig, report: CheckReport) -> None:
    wanted = service_topics(config)
    for name in missing_topics(admin, wanted):
        report.problems.append(f"topic {name!r} does not exist")
        report.fixes.append(
            f"create topic {name} with {wanted[name]} partitions (the relay DAG's ensure_topics task does it)"
        )
    if config.columns.topic is not None and not config.topics and config.topic is None:
        report.notes.append(
            f"rows name their own topic in column {config.columns.topic!r}; list them in 'topics'"
        )
