"""The claim's one-document read (``JSON_ARRAYAGG``) against its row-by-row read, on the real MariaDB:
the same rows with the very same values, whatever the text holds; row by row where a column's type
would not read back the same; and row by row, with nothing lost, when a batch does not fit in one value."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.models import OutboxRow
from outbox_relay.store.claim import ClaimQuery
from outbox_relay.store.outbox import OutboxStore

pytestmark = pytest.mark.integration

AWKWARD = [
    "", " ", "it's", 'say "hi"', "back\\slash", "tab\tnew\nline\rcr", "\x00nul", "\x01\x1f\x7f", "50%", "%s",
    "ünïcödé", "日本語", "emoji 🎉🚀", "\u2028\u2029", "\ufeffbom", "</script>", "{\"json\": [1, 2]}", "null",
    "x" * 1000,
]  # fmt: skip


def _random_text(rng: random.Random, size: int) -> str:
    """Any code point MySQL's utf8mb4 stores (everything but the surrogates), control characters too."""
    points = [rng.choice((rng.randrange(0, 0x80), rng.randrange(0x80, 0xD800), rng.randrange(0xE000, 0x110000)))
              for _ in range(size)]  # fmt: skip
    return "".join(map(chr, points))


def _claim(conn: Connection, config: ServiceConfig, by_document: bool) -> tuple[list[OutboxRow], ClaimQuery]:
    claims = OutboxStore(config).claims
    if not by_document:
        claims._field_kinds = {}
    rows = claims.claim(conn, -1, 10_000)
    conn.rollback()
    return rows, claims


def _both(engine: Engine, config: ServiceConfig) -> tuple[list[OutboxRow], list[OutboxRow], ClaimQuery]:
    with engine.connect() as conn:
        by_rows, _ = _claim(conn, config, by_document=False)
        by_document, claims = _claim(conn, config, by_document=True)
    return by_rows, by_document, claims


def _insert(engine: Engine, rows: list[dict[str, Any]], table: str = "outbox_message") -> None:
    with engine.begin() as conn:
        conn.execute(
            text(f"INSERT INTO {table} (id, message_id, aggregate_id, event_type, topic, payload, headers, attempts) "
                 "VALUES (:id, :m, :k, :e, :t, :p, :h, :a)"),
            rows,
        )  # fmt: skip


def test_any_text_reads_back_the_same_from_the_document(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    rng = random.Random(20261130)
    texts = AWKWARD + [_random_text(rng, rng.randrange(1, 60)) for _ in range(300)]
    rows = [
        {"id": n + 1, "m": f"m-{n}", "k": texts[n][:191], "e": texts[-n - 1][:191], "t": f"t.{n}",
         "p": texts[(n * 7) % len(texts)], "h": None if n % 3 else texts[n // 2], "a": n % 4}
        for n in range(len(texts))
    ]  # fmt: skip
    rows[-1]["id"] = 2**64 - 2  # BIGINT UNSIGNED, near its end
    _insert(db_engine, rows)
    by_rows, by_document, claims = _both(db_engine, service_config(payload={"format": "raw"}))
    assert claims._field_kinds, "the standard table is read as one document"
    assert len(by_document) == len(rows)
    assert by_document == by_rows
    assert [r.key for r in by_document[: len(AWKWARD)]] == [t[:191] for t in AWKWARD]
    assert by_document[-1].row_id == 2**64 - 2


def test_a_json_column_reads_back_as_its_text(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    """MariaDB writes a JSON column into JSON_ARRAY as a document, not as its text: the claim casts it."""
    with db_engine.begin() as conn:
        conn.execute(text("ALTER TABLE outbox_message MODIFY payload JSON NOT NULL"))
    bodies = ['{"b": 1,   "a": [true, null]}', '"just a string"', "[]", '{"quote": "it\'s \\"x\\""}']
    _insert(db_engine, [{"id": n + 1, "m": f"m{n}", "k": "k", "e": "E", "t": "t", "p": b, "h": None, "a": 0}
                        for n, b in enumerate(bodies)])  # fmt: skip
    by_rows, by_document, claims = _both(db_engine, service_config())
    assert claims._field_kinds
    assert [r.body for r in by_document] == bodies
    assert by_document == by_rows
    assert all(r.valid_json for r in by_document)


@pytest.mark.parametrize(
    ("column", "definition"),
    [("payload", "VARBINARY(200)"), ("aggregate_id", "DATETIME(6)"), ("aggregate_id", "DECIMAL(10,2)")],
)
def test_columns_that_would_not_read_back_the_same_keep_the_row_by_row_read(
    db_engine: Engine, service_config: Callable[..., ServiceConfig], column: str, definition: str
) -> None:
    with db_engine.begin() as conn:
        conn.execute(text(f"ALTER TABLE outbox_message MODIFY {column} {definition} NOT NULL"))
    key = "2026-11-30 01:02:03" if "DATETIME" in definition else "12.50" if "DECIMAL" in definition else "k"
    _insert(db_engine, [{"id": n + 1, "m": f"m{n}", "k": key, "e": "E", "t": "t", "p": '{"a": 1}', "h": None, "a": 0}
                        for n in range(5)])  # fmt: skip
    by_rows, by_document, claims = _both(db_engine, service_config())
    assert claims._field_kinds == {}
    assert by_document == by_rows and len(by_rows) == 5


def test_a_batch_too_large_for_one_value_is_read_row_by_row(
    db_engine: Engine, service_config: Callable[..., ServiceConfig], caplog: pytest.LogCaptureFixture
) -> None:
    padded = '{"pad": "' + "y" * 200 + '"}'
    _insert(db_engine, [{"id": n + 1, "m": f"m{n}", "k": f"k{n}", "e": "E", "t": "t", "p": padded, "h": None, "a": 0}
                        for n in range(50)])  # fmt: skip
    config = service_config()
    with db_engine.connect() as conn:
        expected, _ = _claim(conn, config, by_document=False)
        conn.execute(text("SET SESSION group_concat_max_len = 4096"))  # MariaDB cuts the document here
        with caplog.at_level(logging.INFO):
            first, claims = _claim(conn, config, by_document=True)
        assert "did not fit in one value" in caplog.text and "max_allowed_packet" in caplog.text
        assert first == expected
        assert claims._field_kinds == {}, "the rest of the run reads row by row"
        assert claims.claim(conn, -1, 10_000) == expected


def test_the_relay_engine_takes_batches_larger_than_mariadbs_default_limit_as_one_value(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    """5,000 rows of ~400 bytes is a 2 MB document: over MariaDB's default group_concat_max_len (1 MB),
    which ``make_engine`` raises for its sessions."""
    padded = '{"pad": "' + "y" * 300 + '"}'
    _insert(db_engine, [{"id": n + 1, "m": f"m{n}", "k": f"k{n % 7}", "e": "E", "t": "t", "p": padded, "h": None,
                         "a": 0} for n in range(5000)])  # fmt: skip
    with db_engine.connect() as conn:
        rows, claims = _claim(conn, service_config(), by_document=True)
    assert len(rows) == 5000 and [r.row_id for r in rows] == list(range(1, 5001))
    assert claims._field_kinds, "read as one document, not row by row"
