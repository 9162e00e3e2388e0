"""Which relay run sent a row, kept per batch: one record per run of consecutive row ids a batch marked SENT
(``outbox_relay_sent_range``), instead of the run id written into every row.

Why: the SENT update is the relay's critical path, and a 40-character run id in every row made it about a
quarter slower on MariaDB (30k against 39k rows/s at batch 2,000, +6 µs of database CPU per row: the row
grows, and the binary log carries it). A batch of consecutive ids is one small INSERT instead.

The records of one table are disjoint: recording rows that are already inside older records (a row sent
again after a requeue) cuts them out of those first. So the record holding a row is the one with the
greatest ``first_row_id`` not above it, and every read is an index range read, never a scan. All writers of
a table hold its relay lock, which is why sharded tables (one lock per shard) keep the per-row column.
"""

from __future__ import annotations

import logging
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.store.introspection import column_types
from outbox_relay.store.naming import SENT_RANGE_TABLE
from outbox_relay.store.table import OutboxTable

log = logging.getLogger(__name__)

MAX_RANGES = 16  # a batch whose ids scatter into more runs than this writes the run id per row instead
MAX_ROW_ID = 2**64 - 1  # BIGINT UNSIGNED
# Records read per step when looking for the ones a span of ids overlaps: a batch of new rows usually
# overlaps none (the first record read ends below it), so the first step reads few.
FIRST_PAGE, PAGE = 4, 50

Span = tuple[int, int]


def id_ranges(ids: Sequence[Any]) -> list[Span] | None:
    """``ids`` as sorted runs of consecutive integers; None unless every id is an integer that fits a
    ``BIGINT UNSIGNED`` column."""
    if not ids or not all(type(i) is int for i in ids):
        return None
    ordered = sorted(set(ids))
    if ordered[0] < 0 or ordered[-1] > MAX_ROW_ID:
        return None
    if ordered[-1] - ordered[0] == len(ordered) - 1:  # the usual batch: one run
        return [(ordered[0], ordered[-1])]
    spans: list[Span] = []
    first = previous = ordered[0]
    for i in ordered[1:]:
        if i != previous + 1:
            spans.append((first, previous))
            first = i
        previous = i
    spans.append((first, previous))
    return spans


def without(span: Span, cut: Iterable[Span]) -> list[Span]:
    """What is left of ``span`` once the sorted, disjoint spans ``cut`` are taken out of it."""
    left: list[Span] = []
    start, end = span
    for first, last in cut:
        if last < start or first > end:
            continue
        if first > start:
            left.append((start, first - 1))
        start = last + 1
        if start > end:
            return left
    left.append((start, end))
    return left


class SentRanges:
    """One service's sent-range records. The relay writes them (``spans_for`` then ``record``) in the
    transaction that marks the batch SENT; explain, the row history and backfills read them."""

    def __init__(self, table: OutboxTable) -> None:
        self.table = table
        config = table.config
        # Ordered tables are resumed in claim order (not id order), sharded ones written under several
        # locks, and archived or deleted rows leave the table: those keep the run id in the row.
        self.writes = (
            config.shards == 1 and not table.ordered and config.completion in ("update", "timestamp")
        )
        self._exists: bool | None = None
        self._owner = (config.service, config.table)
        self._page_sql = (
            f"SELECT id, first_row_id, last_row_id, run_id, sent_at FROM {SENT_RANGE_TABLE} "
            f"WHERE service = %s AND source_table = %s AND first_row_id <= %s ORDER BY first_row_id DESC LIMIT %s"
        )

    def spans_for(self, conn: Connection, row_ids: Sequence[Any]) -> list[Span] | None:
        """The records for a batch of rows being marked SENT, or None: write the run id into each row (the
        table is not one ranges serve, its ids scatter, or the records table does not exist yet)."""
        if not self.writes:
            return None
        spans = id_ranges(row_ids)
        if spans is None or (len(spans) > MAX_RANGES and self.table.column("run_id") is not None):
            return None
        return spans if self.exists(conn) else None

    def exists(self, conn: Connection) -> bool:
        """Whether the records table exists (asked once per relay run; without it the relay writes the run
        id per row, as before the table existed)."""
        if self._exists is None:
            self._exists = bool(column_types(conn, SENT_RANGE_TABLE))
            if not self._exists and self.writes:
                log.warning(
                    "service %s: table %s is missing, so each relayed row gets its run id written into it "
                    "(slower SENT updates); create it: outbox-relay ddl --shared-only --apply",
                    self.table.config.service,
                    SENT_RANGE_TABLE,
                )
        return self._exists

    def record(self, conn: Connection, spans: list[Span], run_id: str) -> None:
        """Record that ``run_id`` sent the rows ``spans`` (sorted, disjoint), cutting them out of older
        records first (rows sent again), in the caller's transaction. Once per batch, so its two statements
        go to the driver as they are (no SQLAlchemy compilation)."""
        for old in self._overlapping(conn, spans[0][0], spans[-1][1]):
            first, last, old_run, sent_at = old[1:]
            left = without((first, last), spans)
            if left == [(first, last)]:
                continue  # between two of the new spans: untouched
            conn.exec_driver_sql(f"DELETE FROM {SENT_RANGE_TABLE} WHERE id = %s", (old[0],))
            self._insert(conn, left, old_run, sent_at)
        self._insert(conn, spans, run_id[:250], None)

    def _insert(self, conn: Connection, spans: list[Span], run_id: str, sent_at: Any) -> None:
        if not spans:
            return
        service, table = self._owner
        one = "(%s, %s, %s, %s, %s, " + ("NOW(6))" if sent_at is None else "%s)")
        values: list[Any] = []
        for first, last in spans:
            values += (
                (service, table, first, last, run_id)
                if sent_at is None
                else (service, table, first, last, run_id, sent_at)
            )
        conn.exec_driver_sql(
            f"INSERT INTO {SENT_RANGE_TABLE} (service, source_table, first_row_id, last_row_id, run_id, sent_at) "
            f"VALUES {', '.join([one] * len(spans))}",
            tuple(values),
        )

    def _overlapping(self, conn: Connection, low: int, high: int) -> list[Any]:
        """The records (id, first, last, run id, sent at) holding any id from ``low`` to ``high``, highest
        first: read downwards from ``high`` until a record ends below ``low`` (records are disjoint, so none
        further down reaches it)."""
        service, table = self._owner
        found: list[Any] = []
        below, size = high, FIRST_PAGE
        while True:
            page = conn.exec_driver_sql(self._page_sql, (service, table, below, size)).all()
            for record in page:
                if record[2] < low:
                    return found
                found.append(record)
            if len(page) < size:
                return found
            below, size = page[-1][1] - 1, PAGE

    def run_ids(self, conn: Connection, row_ids: Sequence[Any]) -> dict[str, str]:
        """The run that sent each row, by ``str(row id)``, for the integer ids that a record holds."""
        ids = sorted({i for i in row_ids if type(i) is int and 0 <= i <= MAX_ROW_ID})
        if not ids or not self.exists(conn):
            return {}
        records = sorted((r[1], r[2], r[3]) for r in self._overlapping(conn, ids[0], ids[-1]))
        firsts = [r[0] for r in records]
        found: dict[str, str] = {}
        for i in ids:
            at = bisect_right(firsts, i) - 1
            if at >= 0 and records[at][1] >= i:
                found[str(i)] = records[at][2]
        return found

    def last_row_of_run(self, conn: Connection, run_id: str) -> int | None:
        """The highest row id that ``run_id`` is recorded to have sent (where a retried backfill goes on)."""
        if not self.exists(conn):
            return None
        sql = text(
            f"SELECT MAX(last_row_id) FROM {SENT_RANGE_TABLE} "
            "WHERE service = :service AND source_table = :tbl AND run_id = :run_id"
        )
        last = conn.execute(sql, {**self.table.attempt_params, "run_id": run_id[:250]}).scalar()
        return None if last is None else int(last)

    def forget_gone(self, conn: Connection, limit: int) -> int:
        """Delete up to ``limit`` records whose rows are all gone (below the table's lowest row id); how
        many. Nothing while the table is empty: its next row tells where the gone ones end."""
        if not self.exists(conn):
            return 0
        t = self.table
        lowest = conn.execute(
            text(f"SELECT MIN({t.id_col}) FROM {t.name} WHERE 1 = 1{t.row_filter}"), t.filter_params
        ).scalar()
        if type(lowest) is not int:
            return 0
        sql = text(
            f"DELETE FROM {SENT_RANGE_TABLE} WHERE service = :service AND source_table = :tbl "
            "AND last_row_id < :lowest ORDER BY first_row_id LIMIT :limit"
        )
        params = {**t.attempt_params, "lowest": lowest, "limit": limit}
        return int(conn.execute(sql, params).rowcount)
