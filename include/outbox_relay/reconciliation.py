"""Reconciliation: compare an outbox table with the table its consumers write, for a time window.

The consumers record every message they handle (message id, status 0/1/2, error) in the same
transaction as their business change. Comparing the two tables finds what the relay's own
bookkeeping cannot see:

* sent but never consumed: the row is sent, the consumer has no record (or only 'pending') although
  ``grace_seconds`` have passed since it was sent;
* consumed but never marked sent: the consumer handled it, the outbox row is still new (or failed);
* failed: consumer records with status failed (and their error), and outbox rows the relay gave up on.

``redeliver`` fixes the first two in place, in chunks, each a conditional UPDATE that is a no-op if
the row moved on meanwhile (safe next to a running relay, and idempotent): missing rows go back to
new with their retry state reset, so the relay publishes them again (consumers dedupe on the message
id); consumed rows are marked sent, because the consumer's record proves delivery. Outbox rows are
compared chunk by chunk (primary-key order) so a large window needs bounded memory; the two tables
may live in different databases.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, text

from outbox_relay.config import Reconciliation, ServiceConfig, StatusValue
from outbox_relay.errors import ConfigurationError
from outbox_relay.identifiers import quote
from outbox_relay.models import StatsMixin
from outbox_relay.repository import OutboxRepository, expanding

log = logging.getLogger(__name__)

MISSING = "sent_not_consumed"
UNMARKED = "consumed_not_marked_sent"
CONSUMER_FAILED = "consumer_failed"
PRODUCER_FAILED = "producer_failed"
CATEGORIES = (MISSING, UNMARKED, CONSUMER_FAILED, PRODUCER_FAILED)
REDELIVERY_NOTE = "re-delivery requested by reconciliation"


@dataclass
class ReconciliationReport(StatsMixin):
    """Counts per category plus up to ``max_listed`` examples each (message id, business id, error)."""

    service: str
    since: str = ""
    until: str = ""
    checked: int = 0
    consumed: int = 0
    unsent: int = 0
    in_flight: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    listed: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})
    redelivered: int = 0
    marked_sent: int = 0

    @property
    def missing(self) -> int:
        """What ``redeliver`` repairs; the reconciliation DAG fails (or warns) when it is not 0."""
        return self.counts[MISSING] + self.counts[UNMARKED]

    @property
    def failures(self) -> int:
        return self.counts[CONSUMER_FAILED] + self.counts[PRODUCER_FAILED]

    def summary(self) -> str:
        parts = ", ".join(f"{name} {self.counts[name]}" for name in CATEGORIES)
        return (
            f"service {self.service} reconciliation [{self.since}, {self.until}): checked {self.checked}, "
            f"consumed {self.consumed}, unsent {self.unsent}, in flight {self.in_flight}; {parts}; "
            f"redelivered {self.redelivered}, marked sent {self.marked_sent}"
        )


@dataclass(frozen=True)
class _Row:
    row_id: Any
    message_id: str
    business_id: Any
    topic: Any
    status: StatusValue
    error: str | None
    settled: bool


class Reconciler:
    """One service's reconciliation; ``producer`` and ``consumer`` may be the same engine."""

    def __init__(self, config: ServiceConfig, producer: Engine, consumer: Engine | None = None) -> None:
        if config.reconciliation is None:
            raise ValueError(f"service {config.service!r} has no 'reconciliation' section")
        self.config = config
        self.rec: Reconciliation = config.reconciliation
        self.producer = producer
        self.consumer = consumer or producer
        self.repo = OutboxRepository(config)
        self._scan_sql = self._build_scan()

    # --- SQL -------------------------------------------------------------------------

    def _build_scan(self) -> Any:
        cols, repo = self.config.columns, self.repo
        created = quote(cols.created_at or "")
        since_sent = f"COALESCE({quote(cols.sent_at)}, {created})" if cols.sent_at else created
        select = [f"{repo.id_col} AS r_id", f"{repo.status_col} AS r_status"]
        for logical, column in (
            ("mid", cols.message_id),
            ("key", cols.key),
            ("topic", cols.topic),
            ("error", cols.last_error),
        ):
            if column:
                select.append(f"{quote(column)} AS r_{logical}")
        select.append(f"({since_sent} < NOW(6) - INTERVAL :grace_us MICROSECOND) AS r_settled")
        return text(
            f"SELECT {', '.join(select)} FROM {repo.table} WHERE {created} >= :since AND {created} < :until"
            f"{repo.row_filter} AND {repo.id_col} > :after ORDER BY {repo.id_col} LIMIT :limit"
        )

    def _consumer_states(self, conn: Connection, message_ids: list[str]) -> dict[str, tuple[Any, Any]]:
        """Message id -> (status, error) from the consumers' table; a failed record wins over a consumed one."""
        cols = self.rec.columns
        error = quote(cols.error) if cols.error else "NULL"
        where = f"{quote(cols.message_id)} IN :ids"
        params: dict[str, Any] = {"ids": message_ids}
        if self.rec.row_filter is not None:
            where += f" AND {quote(self.rec.row_filter.column)} = :consumer_filter"
            params["consumer_filter"] = self.rec.row_filter.equals
        sql = expanding(
            f"SELECT {quote(cols.message_id)}, {quote(cols.status)}, {error} FROM "
            f"{quote(self.rec.consumer_table)} WHERE {where}",
            "ids",
        )
        states: dict[str, tuple[Any, Any]] = {}
        for mid, status, err in conn.execute(sql, params):
            if states.get(str(mid), (None,))[0] != self.rec.statuses.failed:
                states[str(mid)] = (status, err)
        return states

    # --- the comparison --------------------------------------------------------------

    def run(
        self,
        since: datetime | None = None,
        until: datetime | None = None,
        redeliver: bool = False,
        include_failed: bool = False,
    ) -> ReconciliationReport:
        """Compare rows created in ``[since, until)`` (DB time zone; default: the last ``window_hours``).

        ``redeliver`` repairs what is missing; ``include_failed`` also sends rows the relay gave up on
        again (when the consumer has no record of them)."""
        report = ReconciliationReport(self.config.service)
        with self.producer.connect() as conn:
            start, end = self._window(conn, since, until)
            report.since, report.until = start.isoformat(sep=" "), end.isoformat(sep=" ")
            after: Any = self.repo.cursor_start(conn)
            while True:
                rows = self._scan(conn, start, end, after)
                conn.commit()
                if not rows:
                    break
                after = rows[-1].row_id
                with self.consumer.connect() as cconn:
                    states = self._consumer_states(cconn, [r.message_id for r in rows])
                todo = self._classify(rows, states, report, include_failed)
                if redeliver:
                    self._repair(conn, todo, report)
        return report  # the caller logs or prints it (the CLI's --json output stays clean)

    def _window(self, conn: Connection, since: datetime | None, until: datetime | None) -> tuple[Any, Any]:
        if since is not None and until is not None and since >= until:
            raise ValueError(f"window start {since} must be before its end {until}")
        row = conn.execute(
            text(
                "SELECT COALESCE(:until, NOW(6)), "
                "COALESCE(:since, COALESCE(:until, NOW(6)) - INTERVAL :hours_s SECOND)"
            ),
            {"since": since, "until": until, "hours_s": int(self.rec.window_hours * 3600)},
        ).one()
        return _as_datetime(row[1]), _as_datetime(row[0])

    def _scan(self, conn: Connection, start: datetime, end: datetime, after: Any) -> list[_Row]:
        params = {
            "since": start,
            "until": end,
            "after": after,
            "limit": self.rec.chunk_size,
            "grace_us": int(self.rec.grace_seconds * 1_000_000),
            **self.repo.filter_params,
        }
        return [
            _Row(
                row_id=r["r_id"],
                message_id=self.repo.message_id_for(r["r_id"], r.get("r_mid")),
                business_id=r.get("r_key"),
                topic=r.get("r_topic") or self.config.topic,
                status=r["r_status"],
                error=r.get("r_error"),
                settled=bool(r["r_settled"]),
            )
            for r in conn.execute(self._scan_sql, params).mappings()
        ]

    def _classify(
        self,
        rows: Sequence[_Row],
        states: dict[str, tuple[Any, Any]],
        report: ReconciliationReport,
        include_failed: bool,
    ) -> dict[str, list[Any]]:
        """Count and list each row's category; returns the row ids to reset to new / mark sent."""
        st, cs = self.config.statuses, self.rec.statuses
        todo: dict[str, list[Any]] = {"reset": [], "mark_sent": []}
        for row in rows:
            report.checked += 1
            c_status, c_error = states.get(row.message_id, (None, None))
            handled = c_status in (cs.consumed, cs.failed)
            report.consumed += c_status == cs.consumed
            if c_status == cs.failed:
                self._note(
                    report, CONSUMER_FAILED, row, c_error or "consumer recorded a failure without text"
                )
            if row.status in (st.sent, st.confirmed):
                if handled:
                    continue
                if not row.settled:
                    report.in_flight += 1
                    continue
                self._note(report, MISSING, row, None)
                todo["reset"].append(row.row_id)
            elif handled:
                self._note(report, UNMARKED, row, None)
                todo["mark_sent"].append(row.row_id)
            elif row.status == st.new:
                report.unsent += 1
            elif st.failed is not None and row.status == st.failed:
                self._note(report, PRODUCER_FAILED, row, row.error or "no error recorded")
                if include_failed:
                    todo["reset"].append(row.row_id)
        return todo

    def _note(self, report: ReconciliationReport, category: str, row: _Row, error: Any) -> None:
        report.counts[category] += 1
        if len(report.listed[category]) < self.rec.max_listed:
            item = {"message_id": row.message_id, "row_id": row.row_id, "business_id": row.business_id}
            item["topic"] = row.topic
            if error is not None:
                item["error"] = str(error)
            report.listed[category].append(item)

    # --- repairs ---------------------------------------------------------------------

    def _repair(self, conn: Connection, todo: dict[str, list[Any]], report: ReconciliationReport) -> None:
        st = self.config.statuses
        with conn.begin():
            if todo["reset"]:
                report.redelivered += self._reset(conn, todo["reset"])
            if todo["mark_sent"]:
                sent_at = self.config.columns.sent_at
                keep = [("sent_at", f"COALESCE({quote(sent_at)}, NOW(6))")] if sent_at else []
                sets = self.repo._set_clause("to", [*keep, ("next_attempt_at", "NULL")])
                from_ = [s for s in (st.new, st.failed) if s is not None]
                report.marked_sent += self._update(conn, sets, todo["mark_sent"], st.sent, from_)

    def _reset(self, conn: Connection, ids: list[Any]) -> int:
        """Back to new with a fresh retry budget: the relay publishes the row again."""
        st = self.config.statuses
        sets = self.repo._set_clause(
            "to", [("attempts", "0"), ("next_attempt_at", "NULL"), ("last_error", ":note")]
        )
        from_ = [s for s in (st.sent, st.confirmed, st.failed) if s is not None]
        changed = self._update(conn, sets, ids, st.new, from_)
        if not self.config.columns.inline_retry_state:
            self.repo.forget_attempts(conn, ids)
        return changed

    def _update(
        self, conn: Connection, sets: str, ids: list[Any], to: StatusValue, from_: list[StatusValue]
    ) -> int:
        """Conditional on the status still being one of ``from_``: a row that moved on is left alone."""
        repo = self.repo
        sql = expanding(
            f"UPDATE {repo.table} SET {sets} WHERE {repo.id_col} IN :ids AND {repo.status_col} IN :from_"
            f"{repo.row_filter}",
            "ids",
            "from_",
        )
        params = {"to": to, "ids": ids, "from_": from_, "note": REDELIVERY_NOTE, **repo.filter_params}
        return int(conn.execute(sql, params).rowcount)


def parse_time(value: str, what: str = "") -> datetime:
    """An ISO date/time given by an operator (CLI argument, DAG param), with an error naming ``what``
    (argparse names the argument itself, so the CLI passes nothing)."""
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        where = f"{what}: " if what else ""
        raise ConfigurationError(
            f"{where}{value!r} is not an ISO date/time like 2026-01-31 or 2026-01-31T06:00:00"
        ) from None


def _as_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


# --- consumer-table history cleanup --------------------------------------------------


@dataclass
class ConsumerCleanupStats(StatsMixin):
    deleted_consumed: int = 0
    deleted_failed: int = 0


def purge_consumer_table(
    config: ServiceConfig, engine: Engine, chunk_size: int | None = None
) -> ConsumerCleanupStats:
    """Delete the consumers' records older than ``reconciliation.retention`` (consumed after ``days``,
    failed after ``failed_days``; pending records are kept), in bounded chunks."""
    rec = config.reconciliation
    stats = ConsumerCleanupStats()
    if rec is None or rec.retention is None:
        return stats
    cols, retention = rec.columns, rec.retention
    where = (
        f"{quote(cols.status)} = :status AND {quote(cols.created_at or '')} < NOW(6) - INTERVAL :age_s SECOND"
    )
    params: dict[str, Any] = {"limit": chunk_size or retention.chunk_size}
    if rec.row_filter is not None:
        where += f" AND {quote(rec.row_filter.column)} = :consumer_filter"
        params["consumer_filter"] = rec.row_filter.equals
    sql = text(f"DELETE FROM {quote(rec.consumer_table)} WHERE {where} LIMIT :limit")
    for status, days, attr in (
        (rec.statuses.consumed, retention.days, "deleted_consumed"),
        (rec.statuses.failed, retention.failed_days, "deleted_failed"),
    ):
        while True:
            with engine.begin() as conn:
                deleted = int(
                    conn.execute(sql, {**params, "status": status, "age_s": int(days * 86400)}).rowcount
                )
            setattr(stats, attr, getattr(stats, attr) + deleted)
            if deleted < params["limit"]:
                break
    log.info("service %s consumer-table retention: %s", config.service, stats.as_dict())
    return stats
