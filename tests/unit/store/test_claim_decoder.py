"""The claim's decoder: rows are built positionally from result tuples for speed, so a field shifted by
one would silently send the wrong key or topic. Each field is checked by name, with records built from
the query's own field positions (no database)."""

from __future__ import annotations

import itertools
from dataclasses import fields as dataclass_fields
from typing import Any

import pytest

from outbox_relay.config import STANDARD_COLUMNS, ServiceConfig
from outbox_relay.models import OutboxRow
from outbox_relay.store.claim import _ROW_FIELDS, _unpack
from outbox_relay.store.outbox import OutboxStore


def _store(**extra: Any) -> OutboxStore:
    document = {"service": "orders", "table": "outbox_message", "topic": "orders.events", **extra}
    return OutboxStore(ServiceConfig.model_validate(document))


def _full_store() -> OutboxStore:
    """Every standard column plus the per-row partition and retry flag."""
    return _store(columns={**STANDARD_COLUMNS, "partition": "part", "retry_flag": "rf"})


def _record(positions: dict[str, int], **values: Any) -> tuple[Any, ...]:
    """A result tuple with each named field at the query's position for it."""
    assert set(values) <= set(positions), set(values) - set(positions)
    record: list[Any] = [None] * len(positions)
    for name, value in values.items():
        record[positions[name]] = value
    return tuple(record)


def _decode(store: OutboxStore, republish: bool, **values: Any) -> OutboxRow:
    positions = store.claims.fields(republish=republish)
    rows = store.claims.decode([_record(positions, **values)], positions)
    assert len(rows) == 1
    return rows[0]


def test_row_fields_match_outbox_row() -> None:
    """The import-time guard compares against this tuple; it must name OutboxRow's fields in order."""
    assert tuple(f.name for f in dataclass_fields(OutboxRow)) == _ROW_FIELDS


@pytest.mark.parametrize(
    ("attempts", "waiting", "valid"),
    list(itertools.product([0, 1, 2, 3, 7, 999, 100_000], [False, True], [False, True])),
)
def test_unpack_round_trips_the_packed_state(attempts: int, waiting: bool, valid: bool) -> None:
    """state = attempts*4 + waiting*2 + valid, as the claim's SQL packs it."""
    assert _unpack(attempts * 4 + waiting * 2 + valid) == (attempts, waiting, valid)


def test_the_full_table_selects_every_field() -> None:
    """With every column mapped, each logical field (and the packed state) has a position."""
    positions = _full_store().claims.fields(republish=True)
    expected = {"id", "status", "message_id", "key", "event_type", "topic", "payload", "headers"}
    assert expected | {"partition", "retry_flag", "state"} == set(positions)
    assert positions["id"] == 0
    assert sorted(positions.values()) == list(range(len(positions)))
    assert "status" not in _full_store().claims.fields(republish=False)


def test_decode_maps_every_field_by_name() -> None:
    """Each OutboxRow attribute comes from its own column, and the packed state is unpacked."""
    row = _decode(
        _full_store(),
        republish=True,
        id=42,
        status="SENT",
        message_id="6f1c-uuid",
        key="order-9",
        event_type="OrderPlaced",
        topic="orders.special",
        payload='{"total": 10}',
        headers='{"trace": "abc"}',
        partition=2,
        retry_flag=1,
        state=3 * 4 + 2 + 1,
    )
    assert row == OutboxRow(
        row_id=42,
        message_id="6f1c-uuid",
        key="order-9",
        event_type="OrderPlaced",
        topic="orders.special",
        body='{"total": 10}',
        extra_headers='{"trace": "abc"}',
        status="SENT",
        attempts=3,
        waiting=True,
        failed=False,
        valid_json=True,
        partition=2,
        retry=True,
    )


def test_a_plain_claim_reports_the_new_status() -> None:
    """Without republish the status is not selected: every claimed row is NEW."""
    row = _decode(_full_store(), republish=False, id=1, message_id="m", payload="{}", state=0)
    assert row.status == "NEW"
    assert (row.attempts, row.waiting, row.valid_json) == (0, False, False)


@pytest.mark.parametrize(("flag", "retry"), [(None, True), (0, False), (1, True), (5, True)])
def test_the_retry_flag(flag: Any, retry: bool) -> None:
    """Only a 0 switches retries off; NULL and other values keep them (README, columns.retry_flag)."""
    assert _decode(_full_store(), republish=False, id=1, retry_flag=flag).retry is retry


def test_defaults_from_the_config_when_the_table_has_no_such_columns() -> None:
    """No topic / event type / message id columns: the service's topic and event type, a derived id."""
    columns = {"id": "id", "status": "status", "payload": "payload", "created_at": "created_at"}
    store = _store(columns=columns, event_type="OrderPlaced")
    positions = store.claims.fields(republish=False)
    assert not {"topic", "event_type", "message_id", "key"} & set(positions)
    row = _decode(store, republish=False, id=7, payload="{}", state=1)
    assert row.topic == "orders.events"
    assert row.event_type == "OrderPlaced"
    assert row.message_id == "orders:outbox_message:7"
    assert row.key is None
    assert row.valid_json is True
    assert row.retry is True and row.partition is None


def test_a_null_topic_falls_back_to_the_services_topic() -> None:
    """Rows that leave their topic column empty go to the service's default topic."""
    row = _decode(_full_store(), republish=False, id=1, topic=None)
    assert row.topic == "orders.events"


def test_a_raw_payload_is_not_json_checked() -> None:
    """payload.format raw: the claim does not ask JSON_VALID, so validity is unknown (None)."""
    store = _store(payload={"format": "raw"})
    assert "state" in store.claims.fields(republish=False)  # the attempts are still packed
    row = _decode(store, republish=False, id=1, payload=b"\x00raw", state=2 * 4 + 2)
    assert row.body == b"\x00raw"
    assert (row.attempts, row.waiting, row.valid_json) == (2, True, None)


def test_a_body_built_from_columns() -> None:
    """payload.columns: the body is a JSON object of those columns, in their order."""
    columns = {"id": "id", "status": "status", "key": "order_id", "created_at": "created_at"}
    store = _store(columns=columns, payload={"columns": ["order_id", "amount"]})
    positions = store.claims.fields(republish=False)
    assert {"p_order_id", "p_amount"} <= set(positions)
    assert "state" not in positions  # no retry columns, no JSON check: nothing packed
    row = _decode(store, republish=False, id=3, key="o-3", p_order_id="o-3", p_amount=12)
    assert row.body == {"order_id": "o-3", "amount": 12}
    assert row.key == "o-3"
    assert (row.attempts, row.waiting, row.valid_json) == (0, False, None)


def test_decode_keeps_the_record_order() -> None:
    """Rows come back in the claim's primary-key order, one per record."""
    store = _full_store()
    positions = store.claims.fields(republish=False)
    records = [_record(positions, id=n, message_id=f"m{n}") for n in (5, 6, 9)]
    rows = store.claims.decode(records, positions)
    assert [(r.row_id, r.message_id) for r in rows] == [(5, "m5"), (6, "m6"), (9, "m9")]
