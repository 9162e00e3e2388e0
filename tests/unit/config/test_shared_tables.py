"""Config for shared generic message tables: per-row partition and retry flag, row_filter and
reconciliation; every bad value is an error naming the field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay.config.loader import ServiceFileError, parse_service_config
from outbox_relay.models import OutboxRow
from outbox_relay.relay.messages import partition_of
from outbox_relay.store.outbox import OutboxStore

BASE = """topic: t
table: message_send
columns: {id: id, status: status, payload: body, created_at: created_at, partition: part, retry_flag: rf}
statuses: {new: 0, sent: 1, failed: 2, confirmed: null}
"""


def _config(tmp_path: Path, extra: str, base: str = BASE) -> ServiceConfig:
    path = tmp_path / "billing.yaml"
    path.write_text(base + extra)
    return parse_service_config(path)


def _error(tmp_path: Path, extra: str, base: str = BASE) -> str:
    with pytest.raises(ServiceFileError) as caught:
        _config(tmp_path, extra, base)
    return str(caught.value)


def test_shared_table_config_is_accepted(tmp_path: Path) -> None:
    config = _config(
        tmp_path,
        "row_filter: {column: service_name, equals: billing}\n"
        "reconciliation: {consumer_table: other_db.message_consume, row_filter: {column: svc, equals: 7}}\n",
    )
    assert config.row_filter is not None and config.row_filter.equals == "billing"
    assert config.reconciliation is not None and config.reconciliation.statuses.consumed == 1
    assert config.reconciliation.schedule == "@daily" and config.reconciliation.on_discrepancy == "fail"
    store = OutboxStore(config)
    assert store.table.row_filter == " AND `message_send`.`service_name` = :row_filter"
    assert store.table.filter_params == {"row_filter": "billing"}
    sql, fields = store.claims._sql[(False, False)]
    claim = str(sql)
    assert "`part`" in claim and "`rf`" in claim and ":row_filter" in claim
    assert {"partition", "retry_flag"} <= set(fields)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (
            "row_filter: {column: 'svc; DROP', equals: x}\n",
            "field 'row_filter.column': 'svc; DROP' is not a valid",
        ),
        ("row_filter: {column: svc}\n", "field 'row_filter.equals': required field is missing"),
        ("row_filter: {column: svc, equals: x, other: 1}\n", "field 'row_filter.other': unknown field"),
        ("reconciliation: {}\n", "field 'reconciliation.consumer_table': required field is missing"),
        ("reconciliation: {consumer_table: 'a.b.c'}\n", "field 'reconciliation.consumer_table'"),
        (
            "reconciliation: {consumer_table: c, statuses: {pending: 0, consumed: 1, failed: 1}}\n",
            "must be distinct",
        ),
        ("reconciliation: {consumer_table: c, schedule: 'nightly'}\n", "neither a cron expression"),
        (
            "reconciliation: {consumer_table: c, on_discrepancy: ignore}\n",
            "field 'reconciliation.on_discrepancy'",
        ),
        ("reconciliation: {consumer_table: c, grace_seconds: -1}\n", "field 'reconciliation.grace_seconds'"),
        (
            "reconciliation: {consumer_table: c, columns: {created_at: null}, retention: {days: 9}}\n",
            "reconciliation.retention needs reconciliation.columns.created_at",
        ),
        (
            "reconciliation: {consumer_table: c, retention: {days: 3}}\n",
            "reconciliation.retention.days must be >= retention.days",
        ),
        ("reconciliation: {consumer_table: c, columns: {status: 'st`'}}\n", "reconciliation.columns.status"),
    ],
)
def test_bad_shared_table_settings_name_the_field(tmp_path: Path, extra: str, words: str) -> None:
    assert words in _error(tmp_path, extra)


def test_retry_flag_needs_a_failed_status_and_reconciliation_needs_created_at(tmp_path: Path) -> None:
    no_failed = BASE.replace("failed: 2", "failed: null")
    assert "columns.retry_flag needs statuses.failed" in _error(tmp_path, "retention: null\n", no_failed)
    no_created = BASE.replace(", created_at: created_at", "")
    message = _error(tmp_path, "retention: null\nreconciliation: {consumer_table: c}\n", no_created)
    assert "reconciliation needs columns.created_at" in message


@pytest.mark.parametrize(("value", "expected"), [(None, None), (0, 0), (7, 7), ("3", 3)])
def test_row_partition_values(value: Any, expected: int | None) -> None:
    assert partition_of(value) == expected


@pytest.mark.parametrize(
    ("value", "words"), [(-1, "non-negative"), ("x", "not an integer"), (1.5, "non-negative")]
)
def test_bad_row_partitions_fail_the_row(value: Any, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        partition_of(value)


def test_rows_retry_unless_their_flag_is_zero(tmp_path: Path) -> None:
    claims = OutboxStore(_config(tmp_path, "")).claims
    fields = claims.fields(republish=True)

    def row(**values: object) -> OutboxRow:
        record = [None] * len(fields)
        for name, value in {"id": 1, "status": 0, "payload": "{}", **values}.items():
            record[fields[name]] = value
        return claims.decode([tuple(record)], fields)[0]

    assert row(retry_flag=0).retry is False
    assert row(retry_flag=1).retry is True
    assert row(retry_flag=None).retry is True
    assert row(partition=2).partition == 2
