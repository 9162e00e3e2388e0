"""All SQL against a registered outbox table.

Every identifier comes from a validated config and is quoted; every value is a
bound parameter. Times are the database's (``NOW(6)``), never the relay host's,
so a skewed relay clock cannot relay early or delete early.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime
from decimal import Decimal
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, bindparam, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.sql.elements import TextClause

from outbox_relay.config import ServiceConfig, StatusValue
from outbox_relay.errors import ConfigurationError, MissingConfigurationError, PoisonRowError
from outbox_relay.identifiers import quote
from outbox_relay.models import Confirmation, Failure, OutboxRow, Window

ATTEMPT_TABLE = "outbox_relay_attempt"
MAX_ERROR_CHARS = 2000


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def expanding(sql: str, *names: str) -> TextClause:
    """SQL text whose named parameters take lists (``IN :ids``)."""
    return text(sql).bindparams(*(bindparam(n, expanding=True) for n in names))


def split_table_name(table: str) -> tuple[str | None, str]:
    """``schema.table`` -> (schema, table); a bare name has no schema (the connection's database)."""
    schema, _, name = table.rpartition(".")
    return (schema or None), name


def column_types(conn: Connection, table: str) -> dict[str, str]:
    """Lower-cased column name -> data type, from information_schema; empty if the table is missing."""
    schema, name = split_table_name(table)
    rows = conn.execute(
        text(
            "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS "
            "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :name"
        ),
        {"schema": schema, "name": name},
    )
    return {str(r[0]).lower(): str(r[1]) for r in rows}


def truncate_error(error: str) -> str:
    return error if len(error) <= MAX_ERROR_CHARS else error[: MAX_ERROR_CHARS - 3] + "..."


class OutboxRepository:
    """SQL for one service's outbox table, built once from its config."""

    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.columns = config.columns
        self.table = quote(config.table)
        self.id_col = quote(self.columns.id)
        self.status_col = quote(self.columns.status)
        self.message_prefix = f"{config.service}:{config.table}:"
        # Several services sharing one table (row_filter) each see only their own rows.
        rf = config.row_filter
        self.row_filter = self.row_filter_on(self.table)
        self.filter_params: dict[str, Any] = {} if rf is None else {"row_filter": rf.equals}
        # :service and :tbl: which rows of the attempt table (outbox_relay_attempt) are this service's.
        self.attempt_params: dict[str, Any] = {"service": config.service, "tbl": config.table}
        self._lock_key = config.table if rf is None else f"{config.table}:{rf.equals}"
        self._claim_sql = {republish: self._build_claim(with_status=republish) for republish in (False, True)}
        self._cursor_start: Any = None

    # --- helpers ---------------------------------------------------------------------

    def row_filter_on(self, qualifier: str) -> str:
        """``AND <qualifier>.<filter column> = :row_filter``, or nothing for a table of one service."""
        rf = self.config.row_filter
        return "" if rf is None else f" AND {qualifier}.{quote(rf.column)} = :row_filter"

    def _q(self, logical: str) -> str | None:
        column = getattr(self.columns, logical)
        return None if column is None else quote(column)

    def _set_clause(self, status_param: str, optional: Sequence[tuple[str, str]]) -> str:
        """``status = :param`` plus each optional assignment whose logical column is mapped."""
        sets = [f"{self.status_col} = :{status_param}"]
        for logical, value in optional:
            column = self._q(logical)
            if column:
                sets.append(f"{column} = {value}")
        return ", ".join(sets)

    @property
    def _not_given_up(self) -> str:
        """With ``statuses.failed: null`` a row given up on stays NEW, marked only in the attempt table:
        leave it out of claims and backlog ages, or every pass would claim and skip it again and the
        oldest-NEW age would grow for ever. (Primary-key lookups in the attempt table.)"""
        if self.config.statuses.failed is not None:
            return ""
        return (
            f" AND NOT EXISTS (SELECT 1 FROM {ATTEMPT_TABLE} given_up WHERE given_up.service = :service"
            f" AND given_up.source_table = :tbl AND given_up.row_id = CAST({self.table}.{self.id_col} AS CHAR)"
            " AND given_up.failed = 1)"
        )

    @property
    def _by_primary_key(self) -> str:
        """The table for UPDATEs of claimed rows. Forcing the primary key keeps the statement from scanning
        the (status, id) index, whose neighbouring entries belong to batches that other connections of the
        same pipelined run hold locked: it would wait for them while they wait for it. (MariaDB has no
        index hints for single-table DELETE; retention's deletes by id use the primary key anyway.)"""
        return f"{self.table} FORCE INDEX (PRIMARY)"

    @staticmethod
    def _id_list(ids: Sequence[Any]) -> tuple[str, dict[str, Any]]:
        """SQL for ``IN (...)``: integer ids inline (one short statement, no per-id parameter), others bound."""
        if all(type(i) is int for i in ids):
            return ",".join(map(str, ids)), {}
        return ",".join(f":id_{n}" for n in range(len(ids))), {f"id_{n}": v for n, v in enumerate(ids)}

    def message_id_for(self, row_id: Any, stored: Any) -> str:
        """The stored message id, or the derived ``service:table:row_id`` for tables without one."""
        return str(stored) if self.columns.message_id else f"{self.message_prefix}{row_id}"

    def row_id_from_message_id(self, message_id: str) -> str | None:
        if not message_id.startswith(self.message_prefix):
            return None
        return message_id[len(self.message_prefix) :]

    @property
    def _age_column(self) -> str:
        age = self._q("updated_at") or self._q("created_at")
        assert age is not None, "validated by ServiceConfig"
        return age

    def cursor_start(self, conn: Connection) -> Any:
        """A value below every primary key: '' for textual keys (UUIDs), -1 for numeric ones."""
        if self._cursor_start is not None:
            return self._cursor_start
        kind = column_types(conn, self.config.table).get(self.columns.id.lower())
        if kind is None:
            raise MissingConfigurationError(
                f"service {self.config.service!r}: table {self.config.table} has no column "
                f"{self.columns.id!r} (columns.id); run 'python -m outbox_relay_airflow.cli validate'"
            )
        textual = str(kind).lower() in {"char", "varchar", "binary", "varbinary", "text"}
        self._cursor_start = "" if textual else -1
        return self._cursor_start

    # --- one relay per table at a time ----------------------------------------------

    _LOCK_NAME = "LEFT(CONCAT('outbox-relay:', DATABASE(), ':', :tbl), 64)"

    def acquire_relay_lock(self, conn: Connection, wait_seconds: float) -> bool:
        """A session lock (dies with the connection) so relays of one table take turns: per-key order
        then holds even when a backfill and a scheduled run overlap."""
        got = conn.execute(
            text(f"SELECT GET_LOCK({self._LOCK_NAME}, :wait)"),
            {"tbl": self._lock_key, "wait": wait_seconds},
        ).scalar()
        conn.commit()
        return bool(got)

    def release_relay_lock(self, conn: Connection) -> None:
        """Release the lock; if the connection is broken, discard it (the server drops the lock with it)."""
        try:
            conn.rollback()
            conn.execute(text(f"DO RELEASE_LOCK({self._LOCK_NAME})"), {"tbl": self._lock_key})
            conn.commit()
        except SQLAlchemyError:
            conn.invalidate()

    # --- claim -----------------------------------------------------------------------

    def _build_claim(self, with_status: bool) -> tuple[TextClause, dict[str, int]]:
        """The claim statement and the position of each selected field in its result rows.

        Retry state and payload validity come packed in one integer ``state`` (attempts * 4 + waiting * 2
        + JSON_VALID): the driver decodes every column in Python, so fewer columns is a faster relay, and
        the server validates the JSON instead of the relay parsing every body. The status is only
        selected when a republish may return SENT rows."""
        fields = ["id", "status"] if with_status else ["id"]
        select = [self.id_col, self.status_col] if with_status else [self.id_col]
        optional = (
            "message_id",
            "key",
            "event_type",
            "topic",
            "payload",
            "headers",
            "partition",
            "retry_flag",
        )
        for logical in optional:
            column = self._q(logical)
            if column:
                fields.append(logical)
                select.append(column)
        state = self._packed_state_sql()
        if state:
            fields.append("state")
            select.append(state)
        for column in self.config.payload.columns:
            fields.append(f"p_{column}")
            select.append(quote(column))
        where = [
            f"{self.status_col} IN :statuses{self.row_filter}{self._not_given_up}",
            f"{self.id_col} > :after",
        ]
        created = self._q("created_at")
        if created and self.config.threshold_seconds > 0:
            where.append(f"{created} <= NOW(6) - INTERVAL :threshold_us MICROSECOND")
        if created:
            where.append(f"(:win_start IS NULL OR {created} >= :win_start)")
            where.append(f"(:win_end IS NULL OR {created} < :win_end)")
        sql = (
            f"SELECT {', '.join(select)} FROM {self.table} WHERE {' AND '.join(where)} "
            f"ORDER BY {self.id_col} LIMIT :limit FOR UPDATE SKIP LOCKED"
        )
        return expanding(sql, "statuses"), {name: n for n, name in enumerate(fields)}

    def claim(
        self,
        conn: Connection,
        after: Any,
        limit: int,
        window: Window | None = None,
        republish: bool = False,
    ) -> list[OutboxRow]:
        """Lock the next rows (others' locked rows are skipped) in primary-key order."""
        if window is not None and self.columns.created_at is None:
            raise ConfigurationError(
                f"service {self.config.service!r}: a backfill window needs columns.created_at, "
                f"but table {self.config.table} has none mapped"
            )
        statuses: list[StatusValue] = [self.config.statuses.new]
        if republish:
            statuses.append(self.config.statuses.sent)
        params = {
            **self.attempt_params,
            "statuses": statuses,
            "after": after,
            "limit": limit,
            "threshold_us": int(self.config.threshold_seconds * 1_000_000),
            "win_start": window.start if window else None,
            "win_end": window.end if window else None,
            **self.filter_params,
        }
        sql, fields = self._claim_sql[republish]
        records = conn.execute(sql, params).all()
        rows = self._to_rows(records, fields)
        if rows and not self.columns.inline_retry_state:
            self._load_attempt_state(conn, rows)
        return rows

    def _packed_state_sql(self) -> str | None:
        """``attempts * 4 + waiting * 2 + JSON_VALID``, with the parts the table has."""
        state = []
        if self.columns.attempts and self.columns.next_attempt_at:
            nxt = quote(self.columns.next_attempt_at)
            state.append(f"{quote(self.columns.attempts)} * 4 + 2 * ({nxt} IS NOT NULL AND {nxt} > NOW(6))")
        if self._server_checks_json:
            state.append(f"COALESCE(JSON_VALID({quote(self.columns.payload or '')}), 0)")
        return " + ".join(state) or None

    @property
    def _server_checks_json(self) -> bool:
        return self.columns.payload is not None and self.config.payload.format == "json"

    def _to_rows(self, records: Sequence[Any], fields: dict[str, int]) -> list[OutboxRow]:
        """Result tuples -> rows; positions are looked up once per batch, not per row and field."""

        def at(name: str) -> Callable[[Any], Any]:
            index = fields.get(name)
            return (lambda r: None) if index is None else itemgetter(index)

        status, message_id, key, event_type, topic, payload, headers, packed, partition, retry_flag = (
            at(name)
            for name in (
                "status", "message_id", "key", "event_type", "topic", "payload", "headers", "state",
                "partition", "retry_flag",
            )
        )  # fmt: skip
        built = self.config.payload.columns
        parts = [(c, fields[f"p_{c}"]) for c in built]
        new, default_topic, default_type = self.config.statuses.new, self.config.topic, self.config.event_type
        has_type, has_status, checked = "event_type" in fields, "status" in fields, self._server_checks_json
        rows = []
        for r in records:
            row_id = r[0]
            state, flag = int(packed(r) or 0), retry_flag(r)
            rows.append(
                OutboxRow(  # positional: this runs once per relayed row, and keywords cost twice as much
                    row_id,
                    self.message_id_for(row_id, message_id(r)),
                    key(r),
                    event_type(r) if has_type else default_type,
                    topic(r) or default_topic,
                    {c: r[i] for c, i in parts} if built else payload(r),
                    headers(r),
                    status(r) if has_status else new,
                    state >> 2,
                    bool(state & 2),
                    False,
                    bool(state & 1) if checked else None,
                    partition(r),
                    flag is None or bool(flag),
                )
            )
        return rows

    def _load_attempt_state(self, conn: Connection, rows: list[OutboxRow]) -> None:
        sql = expanding(
            f"SELECT row_id, attempts, (next_attempt_at IS NOT NULL AND next_attempt_at > NOW(6)) AS waiting,"
            f" failed FROM {ATTEMPT_TABLE} WHERE service = :service AND source_table = :tbl"
            " AND row_id IN :ids",
            "ids",
        )
        by_id = {str(r.row_id): r for r in rows}
        params = {**self.attempt_params, "ids": list(by_id)}
        for state in conn.execute(sql, params).mappings():
            row = by_id[state["row_id"]]
            row.attempts = int(state["attempts"])
            row.waiting = bool(state["waiting"])
            row.failed = bool(state["failed"])

    def waiting_keys(self, conn: Connection) -> set[Any]:
        """Keys that have a NEW row waiting for its retry time: their newer rows must wait too."""
        key = self._q("key")
        if key is None:
            return set()
        if self.columns.inline_retry_state:
            nxt = self._q("next_attempt_at")
            sql = text(
                f"SELECT DISTINCT {key} AS k FROM {self.table} "
                f"WHERE {self.status_col} = :new AND {nxt} > NOW(6){self.row_filter}"
            )
        else:
            sql = text(
                f"SELECT DISTINCT o.{key} AS k FROM {ATTEMPT_TABLE} a JOIN {self.table} o "
                f"ON o.{self.id_col} = a.row_id WHERE a.service = :service AND a.source_table = :tbl "
                f"AND a.failed = 0 AND a.next_attempt_at > NOW(6) AND o.{self.status_col} = :new"
                + self.row_filter_on("o")
            )
        params = {"new": self.config.statuses.new, **self.attempt_params, **self.filter_params}
        return {r[0] for r in conn.execute(sql, params)}

    # --- outcome of a batch ----------------------------------------------------------

    def mark_sent(self, conn: Connection, rows: Sequence[OutboxRow], run_id: str) -> int:
        """One statement for the whole batch of acknowledged rows."""
        if not rows:
            return 0
        sets = self._set_clause(
            "sent", [("sent_at", "NOW(6)"), ("run_id", ":run_id"), ("next_attempt_at", "NULL")]
        )
        ids_sql, params = self._id_list([r.row_id for r in rows])
        statuses = self.config.statuses
        params.update(sent=statuses.sent, run_id=run_id[:250], new=statuses.new, sent_before=statuses.sent)
        sql = text(
            f"UPDATE {self._by_primary_key} SET {sets} WHERE {self.id_col} IN ({ids_sql}) "
            f"AND {self.status_col} IN (:new, :sent_before)"
        )
        updated = conn.execute(sql, params).rowcount
        retried = [r.row_id for r in rows if r.attempts and not self.columns.inline_retry_state]
        if retried:
            self.forget_attempts(conn, retried)
        return int(updated)

    def forget_attempts(self, conn: Connection, row_ids: Sequence[Any]) -> None:
        """Drop rows' retry state from the attempt table (tables without retry columns keep it there)."""
        conn.execute(
            expanding(
                f"DELETE FROM {ATTEMPT_TABLE} WHERE service = :service AND source_table = :tbl AND row_id IN :ids",
                "ids",
            ),
            {**self.attempt_params, "ids": [str(i) for i in row_ids]},
        )

    def record_failures(self, conn: Connection, failures: Sequence[Failure]) -> None:
        """Attempts+1, error and next attempt time; FAILED once out of attempts."""
        if not failures:
            return
        statuses = self.config.statuses
        if self.columns.inline_retry_state:
            sql = text(
                f"UPDATE {self._by_primary_key} SET {quote(self.columns.attempts or '')} = "
                f"{quote(self.columns.attempts or '')} + 1, {quote(self.columns.last_error or '')} = :error, "
                f"{quote(self.columns.next_attempt_at or '')} = NOW(6) + INTERVAL :delay_us MICROSECOND, "
                f"{self.status_col} = :status WHERE {self.id_col} = :id"
            )
            conn.execute(
                sql,
                [
                    {
                        "error": truncate_error(f.error),
                        "delay_us": int(f.delay_seconds * 1_000_000),
                        "status": statuses.failed if f.terminal else f.row.status,
                        "id": f.row.row_id,
                    }
                    for f in failures
                ],
            )
            return
        self._record_failures_in_attempt_table(conn, failures)

    def _record_failures_in_attempt_table(self, conn: Connection, failures: Sequence[Failure]) -> None:
        sql = text(
            f"INSERT INTO {ATTEMPT_TABLE} (service, source_table, row_id, attempts, last_error, "
            "next_attempt_at, failed) VALUES (:service, :tbl, :row_id, :attempts, :error, "
            "NOW(6) + INTERVAL :delay_us MICROSECOND, :failed) ON DUPLICATE KEY UPDATE "
            "attempts = VALUES(attempts), last_error = VALUES(last_error), "
            "next_attempt_at = VALUES(next_attempt_at), failed = VALUES(failed)"
        )
        conn.execute(
            sql,
            [
                {
                    **self.attempt_params,
                    "row_id": str(f.row.row_id),
                    "attempts": f.row.attempts + 1,
                    "error": truncate_error(f.error),
                    "delay_us": int(f.delay_seconds * 1_000_000),
                    "failed": 1 if f.terminal else 0,
                }
                for f in failures
            ],
        )
        terminal = [f.row.row_id for f in failures if f.terminal]
        if terminal and self.config.statuses.failed is not None:
            ids_sql, params = self._id_list(terminal)
            conn.execute(
                text(
                    f"UPDATE {self._by_primary_key} SET {self.status_col} = :failed WHERE {self.id_col} IN ({ids_sql})"
                ),
                {**params, "failed": self.config.statuses.failed},
            )

    # --- confirmations ---------------------------------------------------------------

    def apply_confirmations(
        self, conn: Connection, confirmations: Sequence[Confirmation]
    ) -> tuple[int, int, list[str]]:
        """Apply a batch; terminal states are never overwritten. Returns (confirmed, failed, unknown ids)."""
        lookup_col = quote(self.columns.message_id) if self.columns.message_id else self.id_col
        wanted: dict[Any, Confirmation] = {}
        unknown: list[str] = []
        for c in confirmations:
            lookup = c.message_id if self.columns.message_id else self.row_id_from_message_id(c.message_id)
            if lookup is None:
                unknown.append(c.message_id)
            else:
                wanted.setdefault(lookup, c)  # the first word on a message wins, as with one clean delivery
        if not wanted:
            return 0, 0, unknown
        confirmed = self._confirm(conn, lookup_col, [k for k, c in wanted.items() if c.success])
        failed = self._fail(conn, lookup_col, [(k, c) for k, c in wanted.items() if not c.success])
        if confirmed + failed < len(wanted):  # some were already terminal or are unknown: find the unknown
            found = {
                str(r[0])
                for r in conn.execute(
                    expanding(f"SELECT {lookup_col} FROM {self.table} WHERE {lookup_col} IN :ids", "ids"),
                    {"ids": list(wanted)},
                )
            }
            unknown += [c.message_id for k, c in wanted.items() if str(k) not in found]
        return confirmed, failed, unknown

    def _open_statuses(self) -> list[StatusValue]:
        return [self.config.statuses.new, self.config.statuses.sent]

    def _confirm(self, conn: Connection, lookup_col: str, keys: list[Any]) -> int:
        if not keys:
            return 0
        sets = self._set_clause("confirmed", [("confirmed_at", "NOW(6)")])
        sql = expanding(
            f"UPDATE {self.table} SET {sets} WHERE {lookup_col} IN :ids AND {self.status_col} IN :open",
            "ids",
            "open",
        )
        params = {"confirmed": self.config.statuses.confirmed, "ids": keys, "open": self._open_statuses()}
        return int(conn.execute(sql, params).rowcount)

    def _fail(self, conn: Connection, lookup_col: str, items: list[tuple[Any, Confirmation]]) -> int:
        if not items:
            return 0
        sets = self._set_clause("failed", [("last_error", ":error"), ("confirmed_at", "NOW(6)")])
        sql = expanding(
            f"UPDATE {self.table} SET {sets} WHERE {lookup_col} = :id AND {self.status_col} IN :open",
            "open",
        )
        total = 0
        for key, c in items:
            params = {
                "failed": self.config.statuses.failed,
                "error": truncate_error(c.error or "consumer reported FAILED without an error text"),
                "id": key,
                "open": self._open_statuses(),
            }
            total += int(conn.execute(sql, params).rowcount)
        return total

    # --- on-call view ----------------------------------------------------------------

    def backlog(self, conn: Connection) -> dict[str, Any]:
        """Rows by stored status, and how long the oldest NEW row has waited (DB clock)."""
        counts = {
            str(r[0]): int(r[1])
            for r in conn.execute(
                text(
                    f"SELECT {self.status_col}, COUNT(*) FROM {self.table} WHERE 1 = 1{self.row_filter} "
                    f"GROUP BY {self.status_col}"
                ),
                self.filter_params,
            )
        }
        summary: dict[str, Any] = {"rows_by_status": counts}
        created = self._q("created_at")
        if created:
            oldest = conn.execute(
                text(
                    f"SELECT TIMESTAMPDIFF(SECOND, MIN({created}), NOW(6)) FROM {self.table} "
                    f"WHERE {self.status_col} = :new{self.row_filter}{self._not_given_up}"
                ),
                {"new": self.config.statuses.new, **self.attempt_params, **self.filter_params},
            ).scalar()
            summary["oldest_new_seconds"] = None if oldest is None else int(oldest)
        return summary

    # --- retention -------------------------------------------------------------------

    def expired_ids(
        self, conn: Connection, statuses: Sequence[StatusValue], age_seconds: float, after: Any, limit: int
    ) -> list[Any]:
        """A plain (non-locking) read of the next chunk of expired terminal rows."""
        sql = expanding(
            f"SELECT {self.id_col} FROM {self.table} WHERE {self.status_col} IN :statuses "
            f"AND {self._age_column} < NOW(6) - INTERVAL :age_s SECOND AND {self.id_col} > :after"
            f"{self.row_filter} ORDER BY {self.id_col} LIMIT :limit",
            "statuses",
        )
        params = {
            "statuses": list(statuses),
            "age_s": int(age_seconds),
            "after": after,
            "limit": limit,
            **self.filter_params,
        }
        return [r[0] for r in conn.execute(sql, params)]

    def delete_expired(
        self, conn: Connection, ids: Sequence[Any], statuses: Sequence[StatusValue], age_seconds: float
    ) -> int:
        """Delete by primary key, re-checking status and age so only those rows are touched."""
        ids_sql, params = self._id_list(ids)
        sql = expanding(
            f"DELETE FROM {self.table} WHERE {self.id_col} IN ({ids_sql}) "
            f"AND {self.status_col} IN :statuses AND {self._age_column} < NOW(6) - INTERVAL :age_s SECOND"
            f"{self.row_filter}",
            "statuses",
        )
        params.update(statuses=list(statuses), age_s=int(age_seconds), **self.filter_params)
        return int(conn.execute(sql, params).rowcount)

    def expired_failed_attempt_ids(self, conn: Connection, age_seconds: float, limit: int) -> list[str]:
        """Rows given up on, for tables whose FAILED state lives in the attempt table."""
        sql = text(
            f"SELECT row_id FROM {ATTEMPT_TABLE} WHERE service = :service AND source_table = :tbl "
            "AND failed = 1 AND updated_at < NOW(6) - INTERVAL :age_s SECOND ORDER BY row_id LIMIT :limit"
        )
        params = {
            **self.attempt_params,
            "age_s": int(age_seconds),
            "limit": limit,
        }
        return [r[0] for r in conn.execute(sql, params)]

    def delete_failed_attempt_rows(self, conn: Connection, row_ids: Sequence[str]) -> int:
        deleted = conn.execute(
            expanding(
                f"DELETE FROM {self.table} WHERE {self.id_col} IN :ids AND {self.status_col} IN :given_up",
                "ids",
                "given_up",
            ),
            {
                "ids": list(row_ids),
                "given_up": [
                    s for s in (self.config.statuses.new, self.config.statuses.failed) if s is not None
                ],
            },
        ).rowcount
        self.forget_attempts(conn, row_ids)
        return int(deleted)


def encode_body(row: OutboxRow, fmt: str) -> bytes:
    """The Kafka value for a row; raises ``PoisonRowError`` naming the problem for poison rows."""
    body = row.body
    if isinstance(body, dict):
        return json.dumps(body, default=_json_default, separators=(",", ":")).encode()
    if body is None:
        raise PoisonRowError("payload is NULL")
    data = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if fmt == "json" and row.valid_json is not True:
        try:
            json.loads(data)
        except ValueError as exc:
            raise PoisonRowError(f"payload is not valid JSON ({exc})") from None
        if row.valid_json is False:  # Python accepts what the server rejected (e.g. NaN): trust the server
            raise PoisonRowError("payload is not valid JSON (the database's JSON_VALID() rejects it)")
    return data
