"""The claim: lock the next eligible rows and decode them into ``OutboxRow`` objects.

This is the relay's hot path, so it is written for speed and kept here, isolated:

* Only mapped columns are selected, and retry state plus payload validity arrive packed in one integer
  ``state`` = attempts * 4 + waiting * 2 + JSON_VALID: the driver decodes every column in Python, so
  fewer columns is a faster relay, and the server validates the JSON instead of the relay parsing every
  body. ``_unpack`` is the one place that reads the packing.
* Rows are built positionally (keywords cost ~1 µs more per row, ~2.5 % of the relay's CPU per message);
  ``_ROW_FIELDS`` names that order and is checked against ``OutboxRow`` when this module is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import fields as dataclass_fields
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import TextClause

from outbox_relay.config import StatusValue
from outbox_relay.errors import ConfigurationError
from outbox_relay.models import OutboxRow, Window
from outbox_relay.store import table as table_sql
from outbox_relay.store.json_paths import value_at
from outbox_relay.store.mysql_errors import JSON_TOO_DEEP
from outbox_relay.store.naming import expanding, quote
from outbox_relay.store.retry_state import RetryState
from outbox_relay.store.table import OutboxTable

log = logging.getLogger(__name__)

_ROW_FIELDS = (
    "row_id", "message_id", "key", "event_type", "topic", "body", "extra_headers", "status",
    "attempts", "waiting", "failed", "valid_json", "partition", "retry", "position",
)  # fmt: skip
if tuple(f.name for f in dataclass_fields(OutboxRow)) != _ROW_FIELDS:
    raise ImportError("OutboxRow's fields changed: update _ROW_FIELDS and ClaimQuery._decode together")

_OPTIONAL = ("message_id", "key", "event_type", "topic", "payload", "headers", "partition", "retry_flag")


def _unpack(state: int) -> tuple[int, bool, bool]:
    """``state`` -> (attempts, waiting for its retry time, payload is valid JSON)."""
    return state >> 2, bool(state & 2), bool(state & 1)


class ClaimQuery:
    """The claim statements of one service, built once: plain runs, republish runs, and replays (which
    claim only the rows they name, whatever their age)."""

    def __init__(self, table: OutboxTable, retry_state: RetryState) -> None:
        self.table = table
        self.retry_state = retry_state
        config = table.config
        self._checks_json = config.columns.payload is not None and config.payload.format == "json"
        self._extracts_in_sql = any(table.json_source(f) for f in _OPTIONAL)  # json_values, in SQL
        self._build_all()

    def _build_all(self) -> None:
        self._sql = {
            (republish, named): self._build(with_status=republish, named_rows=named)
            for republish in (False, True)
            for named in (False, True)
        }

    def _execute(self, conn: Connection, key: tuple[bool, bool], params: dict[str, Any]) -> list[OutboxRow]:
        """Run a claim. MySQL's JSON functions raise error 3157 on a document nested deeper than 100
        levels, which would fail every claim of the table: then the payloads are checked, and the
        ``json_values`` read, in Python instead (a bad document fails only its own row), for the rest of
        this relay's life."""
        sql, fields = self._sql[key]
        try:
            return self.decode(conn.execute(sql, params).all(), fields)
        except OperationalError as exc:
            in_sql = self._checks_json or self._extracts_in_sql
            if not in_sql or getattr(exc.orig, "args", (None,))[0] != JSON_TOO_DEEP:
                raise
            log.warning(
                "service %s: the database refused to read a JSON document of %s (%s); payloads are checked "
                "and JSON values read by the relay from now on",
                self.table.config.service, self.table.config.table, exc.orig,
            )  # fmt: skip
        self._checks_json = self._extracts_in_sql = False
        self._build_all()
        sql, fields = self._sql[key]
        return self.decode(conn.execute(sql, params).all(), fields)

    def fields(self, republish: bool) -> dict[str, int]:
        """Position of each selected logical field in a result row (tests use it to build records)."""
        return self._sql[(republish, False)][1]

    def _packed_state_sql(self) -> str | None:
        parts = []
        retry = self.retry_state.claim_columns()
        if retry is not None:
            attempts, waiting = retry
            parts.append(f"{attempts} * 4 + 2 * {waiting}")
        if self._checks_json:
            parts.append(f"COALESCE({table_sql.JSON_VALID}({self.table.claim_column('payload')}), 0)")
        return " + ".join(parts) or None

    def _claimed(self, republish: bool) -> list[StatusValue]:
        """NEW rows; a republish run takes SENT rows too."""
        statuses = self.table.statuses
        return [statuses.new, statuses.sent] if republish else [statuses.new]

    def _build(self, with_status: bool, named_rows: bool) -> tuple[TextClause, dict[str, int]]:
        """The statement and the position of each selected field. The status is only selected when a
        republish may return SENT rows."""
        t = self.table
        fields = ["id", "status"] if with_status else ["id"]
        select = [t.id_col, t.status_col] if with_status else [t.id_col]
        for logical in _OPTIONAL:
            column = t.claim_column(logical, self._extracts_in_sql)
            if column:
                fields.append(logical)
                select.append(column)
        state = self._packed_state_sql()
        if state:
            fields.append("state")
            select.append(state)
        for column in t.config.payload.columns:
            fields.append(f"p_{column}")
            select.append(quote(column))
        if t.ordered:
            for n, column in enumerate(t.config.claim_order[:-1]):
                fields.append(f"o_{n}")
                select.append(quote(column))
        where = self._conditions(with_status, named_rows)
        # A sharded table's rows are owned through the shard's relay lock, so the claim reads without row
        # locks: a FOR UPDATE scan also locks each of the other shards' rows it passes over until the
        # WHERE has rejected it, and their SKIP LOCKED claims would skip such rows and publish later rows
        # of the same keys first.
        locking = "" if t.config.shards > 1 else " FOR UPDATE SKIP LOCKED"
        sql = (
            f"SELECT {', '.join(select)} FROM {t.name} WHERE {' AND '.join(where)} "
            f"ORDER BY {t.order_sql} LIMIT :limit{locking}"
        )
        return expanding(sql, "statuses", *(["named"] if named_rows else [])), {
            name: n for n, name in enumerate(fields)
        }

    def _conditions(self, with_status: bool, named_rows: bool) -> list[str]:
        """The claim's WHERE: claimable status, the cursor, the shard, the named rows or the threshold,
        the backfill window."""
        t = self.table
        where = [
            f"{t.status_in('statuses', self._claimed(with_status))}{t.row_filter}{self.retry_state.not_given_up}",
            t.after(),
        ]
        if t.config.shards > 1:  # a shard's rows (or all of them, for a whole-table run)
            where.append(f"(:shard IS NULL OR {t.shard_of_row} = :shard)")
        created = t.column("created_at")
        if named_rows:
            where.append(f"{t.id_col} IN :named")
        elif created and t.config.threshold_seconds > 0:
            where.append(t.created("<=", "NOW(6) - INTERVAL :threshold_us MICROSECOND"))
        if created:
            where.append(f"(:win_start IS NULL OR {t.created('>=', ':win_start')})")
            where.append(f"(:win_end IS NULL OR {t.created('<', ':win_end')})")
        return where

    def claim(
        self,
        conn: Connection,
        after: Any,
        limit: int,
        window: Window | None = None,
        republish: bool = False,
        named: Sequence[Any] = (),
        shard: int | None = None,
    ) -> list[OutboxRow]:
        """Lock the next rows after ``after`` (others' locked rows are skipped) in primary-key order;
        with ``named``, only those rows."""
        t = self.table
        if window is not None and t.columns.created_at is None:
            raise ConfigurationError(
                f"service {t.config.service!r}: a backfill window needs columns.created_at, "
                f"but table {t.config.table} has none mapped"
            )
        params = {
            **t.attempt_params,
            **t.filter_params,
            "statuses": self._claimed(republish),
            **t.after_params(after),
            "limit": limit,
            "threshold_us": int(t.config.threshold_seconds * 1_000_000),
            "win_start": window.start if window else None,
            "win_end": window.end if window else None,
            "shard": shard,
        }
        if named:
            params["named"] = list(named)
        rows = self._execute(conn, (republish, bool(named)), params)
        self.retry_state.load(conn, rows)
        return rows

    def decode(self, records: Sequence[Any], fields: dict[str, int]) -> list[OutboxRow]:
        """Result tuples -> rows; positions are looked up once per batch, not per row and field."""

        def at(name: str) -> Callable[[Any], Any]:
            index = fields.get(name)
            source = None if self._extracts_in_sql else self.table.json_source(name)
            if index is None:
                return lambda r: None
            if source is None:
                return itemgetter(index)
            return lambda r: value_at(r[index], source.path, source.unquote)

        status, message_id, key, event_type, topic, payload, headers, packed, partition, retry_flag = (
            at(name)
            for name in (
                "status", "message_id", "key", "event_type", "topic", "payload", "headers", "state",
                "partition", "retry_flag",
            )
        )  # fmt: skip
        t = self.table
        built = t.config.payload.columns
        parts = [(c, fields[f"p_{c}"]) for c in built]
        new, default_topic, default_type = t.statuses.new, t.config.topic, t.config.event_type
        has_type, has_status, checked = "event_type" in fields, "status" in fields, self._checks_json
        message_id_for = t.message_id_for
        order = [fields[f"o_{n}"] for n in range(len(t.config.claim_order) - 1)] if t.ordered else None
        rows = []
        for r in records:
            row_id = r[0]
            attempts, waiting, valid = _unpack(int(packed(r) or 0))
            flag = retry_flag(r)
            rows.append(
                OutboxRow(  # in _ROW_FIELDS order
                    row_id,
                    message_id_for(row_id, message_id(r)),
                    key(r),
                    event_type(r) if has_type else default_type,
                    topic(r) or default_topic,
                    {c: r[i] for c, i in parts} if built else payload(r),
                    headers(r),
                    status(r) if has_status else new,
                    attempts,
                    waiting,
                    False,
                    valid if checked else None,
                    partition(r),
                    flag is None or bool(flag),
                    None if order is None else (*(r[i] for i in order), row_id),
                )
            )
        return rows
