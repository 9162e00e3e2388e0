"""The claim: read (and, in a serial run, lock) the next eligible rows and decode them into ``OutboxRow``s.

This is the relay's hot path, so it is written for speed and kept here, isolated:

* Only mapped columns are selected, and retry state plus payload validity arrive packed in one integer
  ``state`` = attempts * 4 + waiting * 2 + JSON_VALID: the driver decodes every column in Python, so
  fewer columns is a faster relay, and the server validates the JSON instead of the relay parsing every
  body. ``_unpack`` is the one place that reads the packing (``_unpack_all`` applies it to a batch).
* A batch arrives as one value when every column allows it: the server writes the rows into one JSON
  document (``JSON_ARRAYAGG``) that one ``orjson`` call decodes, instead of the driver decoding every
  column of every row in Python (about 10 µs less CPU per message). That needs integer or text columns
  only, read back as the very values the driver would return: text is cast to characters first (a JSON
  column would otherwise be embedded as a document, not as its text), and binary strings, times or
  decimals keep the row-by-row read. A document too large for the server (``max_allowed_packet``, and
  MariaDB's ``group_concat_max_len``) is noticed by its row count and the run reads row by row.
* Rows are built positionally (keywords cost ~1 µs more per row, ~2.5 % of the relay's CPU per message);
  ``_ROW_FIELDS`` names that order and is checked against ``OutboxRow`` when this module is imported.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import fields as dataclass_fields
from itertools import repeat
from operator import itemgetter
from typing import Any

import orjson
from sqlalchemy import Connection, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.elements import TextClause

from outbox_relay.config import StatusValue
from outbox_relay.errors import ConfigurationError
from outbox_relay.models import OutboxRow, Window
from outbox_relay.store import table as table_sql
from outbox_relay.store.introspection import fix_shard_column_ddl, value_kinds
from outbox_relay.store.json_paths import value_at
from outbox_relay.store.mysql_errors import JSON_TOO_DEEP
from outbox_relay.store.naming import expanding, quote
from outbox_relay.store.retry_state import RetryState
from outbox_relay.store.table import OutboxTable

log = logging.getLogger(__name__)

_ROW_FIELDS = (
    "row_id",
    "message_id",
    "key",
    "event_type",
    "topic",
    "body",
    "extra_headers",
    "status",
    "attempts",
    "waiting",
    "failed",
    "valid_json",
    "partition",
    "retry",
    "position",
)
if tuple(f.name for f in dataclass_fields(OutboxRow)) != _ROW_FIELDS:
    raise ImportError("OutboxRow's fields changed: update _ROW_FIELDS and ClaimQuery._decode together")

_OPTIONAL = ("message_id", "key", "event_type", "topic", "payload", "headers", "partition", "retry_flag")


_ROW_ID = itemgetter(0)
_AGGREGATABLE = frozenset({"integer", "text"})
SHARD_SAMPLE_ROWS = 1000  # rows a run's first claim checks a mapped shard column on


def _unpack(state: int) -> tuple[int, bool, bool]:
    """``state`` -> (attempts, waiting for its retry time, payload is valid JSON)."""
    return state >> 2, bool(state & 2), bool(state & 1)


def _unpack_all(states: list[int], n: int) -> tuple[Iterable[int], Iterable[bool], Iterable[bool]]:
    """``_unpack`` for a batch: the three fields as columns (all-zero states, the usual case for the
    first two, cost no per-row work)."""
    if not any(state & ~1 for state in states):
        return repeat(0, n), repeat(False, n), [state == 1 for state in states]
    unpacked = [_unpack(state) for state in states]
    return [u[0] for u in unpacked], [u[1] for u in unpacked], [u[2] for u in unpacked]


class ClaimQuery:
    """The claim statements of one service, built once: plain runs, republish runs, and replays (which
    claim only the rows they name, whatever their age)."""

    def __init__(self, table: OutboxTable, retry_state: RetryState) -> None:
        self.table = table
        self.retry_state = retry_state
        config = table.config
        self._checks_json = config.columns.payload is not None and config.payload.format == "json"
        self._extracts_in_sql = any(table.json_source(f) for f in _OPTIONAL)  # json_values, in SQL
        # How each selected field is written into the batch document (None: not decided yet, the first
        # claim reads the column types; {}: this table's batches are read row by row).
        self._field_kinds: dict[str, str] | None = None
        self._build_all()

    def _build_all(self) -> None:
        self._sql: dict[tuple[bool, bool], tuple[TextClause, dict[str, int]]] = {}
        self._aggregated: dict[tuple[bool, bool], TextClause] = {}
        for republish in (False, True):
            for named in (False, True):
                fields, select, rest = self._parts(with_status=republish, named_rows=named)
                params = ["statuses", *(["named"] if named else [])]
                self._sql[(republish, named)] = (
                    expanding(f"SELECT {', '.join(select)} {rest}", *params),
                    {name: n for n, name in enumerate(fields)},
                )
                if self._field_kinds:
                    self._aggregated[(republish, named)] = expanding(
                        self._aggregate(fields, select, rest), *params
                    )

    def _aggregate(self, fields: list[str], select: list[str], rest: str) -> str:
        """The claim as one JSON document of row arrays (text cast to characters), and its row count."""
        kinds = self._field_kinds or {}
        inner = ", ".join(f"{column} AS c{n}" for n, column in enumerate(select))
        outer = ", ".join(
            f"CAST(c{n} AS CHAR)" if kinds[name] == "text" else f"c{n}" for n, name in enumerate(fields)
        )
        return f"SELECT COUNT(*), JSON_ARRAYAGG(JSON_ARRAY({outer})) FROM (SELECT {inner} {rest}) AS claimed"

    def _decide_aggregating(self, conn: Connection) -> None:
        """Batches come as one document when the table is claimed in primary-key order of an integer key
        and every selected column is an integer or text (see the module's docstring)."""
        t = self.table
        self._field_kinds = {}
        if t.ordered or t.config.payload.columns or any(t.json_source(f) for f in _OPTIONAL):
            return
        columns = value_kinds(conn, t.config.table)
        kinds = {"id": columns.get(t.columns.id.lower(), "other"), "state": "integer"}
        status = t.columns.status
        kinds["status"] = "text" if status is None else columns.get(status.lower(), "other")
        for logical in _OPTIONAL:
            column = getattr(t.columns, logical)
            if column is not None:
                kinds[logical] = columns.get(column.lower(), "other")
        if kinds["id"] == "integer" and set(kinds.values()) <= _AGGREGATABLE:
            self._field_kinds = kinds
            self._build_all()

    def _check_shard_column(self, conn: Connection) -> None:
        """A mapped shard column must hold what the bucket locks assume (``shard_of_row``): one built for
        another shard count would make shards claim each other's keys and leave rows to no shard. Its
        expression is the same for every row, so the newest rows tell; the run fails before claiming."""
        t = self.table
        column = t.config.columns.shard
        if column is None:
            return
        newest = f"SELECT * FROM {t.name} ORDER BY {t.id_col} DESC LIMIT {SHARD_SAMPLE_ROWS}"
        checked, wrong = conn.execute(
            text(f"SELECT COUNT(*), SUM(NOT ({t.row_shard} <=> {t.shard_of_row})) FROM ({newest}) AS newest")
        ).one()
        if wrong:
            fix = fix_shard_column_ddl(t.config.table, column, t.shard_of_row)
            raise ConfigurationError(
                f"service {t.config.service!r}: column {column!r} (columns.shard) does not hold "
                f"{t.shard_of_row} in {wrong} of the table's newest {checked} rows, so shards would claim "
                f"each other's rows; nothing was claimed. Make it hold that ({fix}) or unmap columns.shard"
            )

    def _execute(self, conn: Connection, key: tuple[bool, bool], params: dict[str, Any]) -> list[OutboxRow]:
        """Run a claim. MySQL's JSON functions raise error 3157 on a document nested deeper than 100
        levels, which would fail every claim of the table: then the payloads are checked, and the
        ``json_values`` read, in Python instead (a bad document fails only its own row), for the rest of
        this relay's life."""
        if self._field_kinds is None:  # the run's first claim
            self._check_shard_column(conn)
            self._decide_aggregating(conn)
        try:
            return self._read(conn, key, params)
        except OperationalError as exc:
            in_sql = self._checks_json or self._extracts_in_sql
            if not in_sql or getattr(exc.orig, "args", (None,))[0] != JSON_TOO_DEEP:
                raise
            log.warning(
                "service %s: the database refused to read a JSON document of %s (%s); payloads are checked "
                "and JSON values read by the relay from now on",
                self.table.config.service,
                self.table.config.table,
                exc.orig,
            )
        self._checks_json = self._extracts_in_sql = False
        self._build_all()
        return self._read(conn, key, params)

    def _read(self, conn: Connection, key: tuple[bool, bool], params: dict[str, Any]) -> list[OutboxRow]:
        sql, fields = self._sql[key]
        if self._field_kinds:
            records = self._read_document(conn, key, params)
            if records is not None:
                return self.decode(records, fields)
        return self.decode(conn.execute(sql, params).all(), fields)

    def _read_document(
        self, conn: Connection, key: tuple[bool, bool], params: dict[str, Any]
    ) -> list[Any] | None:
        """The batch from its one-document form, in claim order; None (and row-by-row reads for the rest
        of this relay's life) when the server could not send the whole document."""
        count, document = conn.execute(self._aggregated[key], params).one()
        if not count:
            return []
        try:
            records = orjson.loads(document)
        except (TypeError, ValueError):  # orjson.JSONDecodeError is a ValueError
            records = None
        if not isinstance(records, list) or len(records) != count:
            log.info(
                "service %s: a batch of %s rows of %s did not fit in one value (the server's "
                "max_allowed_packet, or MariaDB's group_concat_max_len); batches are read row by row for "
                "the rest of this run (the same rows, only slower)",
                self.table.config.service,
                count,
                self.table.config.table,
            )
            self._field_kinds = {}
            return None
        records.sort(key=_ROW_ID)  # JSON_ARRAYAGG keeps no order on MySQL
        return records

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

    def _parts(self, with_status: bool, named_rows: bool) -> tuple[list[str], list[str], str]:
        """The claim's selected fields, their SQL, and the statement from FROM on. The status is only
        selected when a republish may return SENT rows."""
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
        # Only a serial run of an unsharded table claims with row locks (held until its batch is SENT).
        # A sharded table's rows are owned through the shard's relay lock: a FOR UPDATE scan also locks
        # each of the other shards' rows it passes over until the WHERE has rejected it, and their SKIP
        # LOCKED claims would skip such rows and publish later rows of the same keys first. A pipelined
        # run commits each claim at once, so its locks kept nothing away that the relay lock does not,
        # and taking them slowed the SENT update running beside the claim (about 18 % of the run's
        # throughput at batch 2000).
        locks_rows = t.config.shards == 1 and not t.config.pipelining
        locking = " FOR UPDATE SKIP LOCKED" if locks_rows else ""
        rest = f"FROM {t.name} WHERE {' AND '.join(where)} ORDER BY {t.order_sql} LIMIT :limit{locking}"
        return fields, select, rest

    def _conditions(self, with_status: bool, named_rows: bool) -> list[str]:
        """The claim's WHERE: claimable status, the cursor, the shard, the named rows or the threshold,
        the backfill window."""
        t = self.table
        where = [
            f"{t.status_in('statuses', self._claimed(with_status))}{t.row_filter}{self.retry_state.not_given_up}",
            t.after(),
        ]
        if t.config.shards > 1:  # a shard's rows (or all of them, for a whole-table run)
            where.append(f"(:shard IS NULL OR {t.row_shard} = :shard)")
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
        """The next rows after ``after`` in primary-key order (a serial run locks them, skipping rows that
        others hold locked); with ``named``, only those rows."""
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
        """Result rows -> ``OutboxRow``s, a column at a time (a list per field, then one ``map``): a
        function call per row and field would cost more than the whole decode of the batch document."""
        t, n = self.table, len(records)

        def column(name: str, absent: Any = None) -> Iterable[Any]:
            index = fields.get(name)
            if index is None:
                return repeat(absent, n)
            source = None if self._extracts_in_sql else t.json_source(name)
            if source is None:
                return [r[index] for r in records]
            return [value_at(r[index], source.paths, source.unquote) for r in records]

        ids = [r[0] for r in records]
        if t.stores_message_ids:
            message_ids: Iterable[str] = ["" if m is None else str(m) for m in column("message_id")]
        else:
            message_ids = [t.message_id_for(row_id, None) for row_id in ids]
        attempts, waiting, valid = _unpack_all([int(s or 0) for s in column("state", 0)], n)
        default_topic = t.config.topic
        topics = column("topic", default_topic)
        if default_topic is not None and "topic" in fields:
            topics = [topic or default_topic for topic in topics]
        built = t.config.payload.columns
        if built:
            parts = [(c, fields[f"p_{c}"]) for c in built]
            bodies: Iterable[Any] = [{c: r[i] for c, i in parts} for r in records]
        else:
            bodies = column("payload")
        retry: Iterable[bool] = repeat(True, n)
        if "retry_flag" in fields:
            retry = [flag is None or bool(flag) for flag in column("retry_flag")]
        positions: Iterable[Any] = repeat(None, n)
        if t.ordered:
            order = [fields[f"o_{k}"] for k in range(len(t.config.claim_order) - 1)]
            positions = [(*(r[i] for i in order), r[0]) for r in records]
        return list(
            map(  # in _ROW_FIELDS order
                OutboxRow,
                ids,
                message_ids,
                column("key"),
                column("event_type", t.config.event_type),
                topics,
                bodies,
                column("headers"),
                column("status", t.statuses.new),
                attempts,
                waiting,
                repeat(False, n),
                valid if self._checks_json else repeat(None, n),
                column("partition"),
                retry,
                positions,
            )
        )
