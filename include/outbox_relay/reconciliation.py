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

from sqlalchemy import Connection, Engine

from outbox_relay.config import Reconciliation, ServiceConfig
from outbox_relay.errors import ConfigurationError, MissingConfigurationError
from outbox_relay.models import ScannedRow, StatsMixin
from outbox_relay.store.outbox import OutboxStore
from outbox_relay.store.reconciliation import purge_consumer_records

log = logging.getLogger(__name__)

MISSING = "sent_not_consumed"
UNMARKED = "consumed_not_marked_sent"
CONSUMER_FAILED = "consumer_failed"
PRODUCER_FAILED = "producer_failed"
CATEGORIES = (MISSING, UNMARKED, CONSUMER_FAILED, PRODUCER_FAILED)


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


class Reconciler:
    """One service's reconciliation; ``producer`` and ``consumer`` may be the same engine."""

    def __init__(self, config: ServiceConfig, producer: Engine, consumer: Engine | None = None) -> None:
        if config.reconciliation is None:
            raise MissingConfigurationError(f"service {config.service!r} has no 'reconciliation' section")
        self.config = config
        self.rec: Reconciliation = config.reconciliation
        self.producer = producer
        self.consumer = consumer or producer
        self.store = OutboxStore(config)
        self.queries = self.store.reconciliation

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
            after: Any = self.store.cursor_start(conn)
            while True:
                rows = self.queries.scan(conn, start, end, after)
                conn.commit()
                if not rows:
                    break
                after = rows[-1].row_id
                with self.consumer.connect() as cconn:
                    states = self.queries.consumer_states(cconn, [r.message_id for r in rows])
                todo = self._classify(rows, states, report, include_failed)
                if redeliver:
                    self._repair(conn, todo, report)
        return report  # the caller logs or prints it (the CLI's --json output stays clean)

    def _window(self, conn: Connection, since: datetime | None, until: datetime | None) -> tuple[Any, Any]:
        if since is not None and until is not None and since >= until:
            raise ConfigurationError(f"window start {since} must be before its end {until}")
        start, end = self.queries.window(conn, since, until)
        return _as_datetime(start), _as_datetime(end)

    def _classify(
        self,
        rows: Sequence[ScannedRow],
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

    def _note(self, report: ReconciliationReport, category: str, row: ScannedRow, error: Any) -> None:
        report.counts[category] += 1
        if len(report.listed[category]) < self.rec.max_listed:
            item = {"message_id": row.message_id, "row_id": row.row_id, "business_id": row.business_id}
            item["topic"] = row.topic
            if error is not None:
                item["error"] = str(error)
            report.listed[category].append(item)

    # --- repairs ---------------------------------------------------------------------

    def _repair(self, conn: Connection, todo: dict[str, list[Any]], report: ReconciliationReport) -> None:
        with conn.begin():
            if todo["reset"]:
                report.redelivered += self.queries.reset_to_new(conn, todo["reset"])
            if todo["mark_sent"]:
                report.marked_sent += self.queries.mark_sent(conn, todo["mark_sent"])


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
    chunk, retention = chunk_size or rec.retention.chunk_size, rec.retention
    stats.deleted_consumed = purge_consumer_records(engine, rec, rec.statuses.consumed, retention.days, chunk)
    stats.deleted_failed = purge_consumer_records(
        engine, rec, rec.statuses.failed, retention.failed_days, chunk
    )
    log.info("service %s consumer-table retention: %s", config.service, stats.as_dict())
    return stats
