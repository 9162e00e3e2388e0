"""``audit``: "did we lose anything?" for one service and a time window, answered by reading the topic
back and comparing it with the table, message id by message id (the fault suite's history checks, as a
product command).

Every class of row the window holds is reported: rows marked sent that are not on the topic (lost: the one
thing that must never happen), rows on the topic but not marked (the next run publishes them again;
consumers dedupe), rows never sent (still NEW, not on the topic: waiting, held back or stuck), FAILED rows
(given up on, or answered FAILED), rows still awaiting a confirmation, confirmed rows, duplicate records,
and per-key order violations (a message first seen after a newer message of its key). The topics read are
the service's (``topic``, ``topics``) and those the window's rows name in their own topic column; the
dead-letter topic is not.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.kafka.readback import TopicRecord, read_back
from outbox_relay.kafka.records import HEADER_MESSAGE_ID
from outbox_relay.models import AuditedRow, StatsMixin
from outbox_relay.store.outbox import OutboxStore

CATEGORIES = (
    "sent_not_on_topic",
    "order_violations",
    "on_topic_not_marked",
    "not_sent",
    "failed",
    "unconfirmed",
    "confirmed",
    "duplicates",
)
# Producer timestamps come from the relay host's clock: read from a little before the window.
CLOCK_MARGIN = timedelta(minutes=15)


@dataclass
class AuditReport(StatsMixin):
    service: str
    since: str = ""
    until: str = ""
    rows: int = 0
    records_read: int = 0
    on_topic: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))
    listed: dict[str, list[str]] = field(default_factory=lambda: {c: [] for c in CATEGORIES})
    # Message ids per category, of which ``listed`` shows the first (a duplicate's extra copies are counted
    # in ``counts``, its id once here).
    ids: dict[str, int] = field(default_factory=lambda: dict.fromkeys(CATEGORIES, 0))

    def unlisted(self, category: str) -> int:
        """Message ids of ``category`` left out of ``listed`` (the "and N more" of a listing)."""
        return self.ids[category] - len(self.listed[category])

    @property
    def ok(self) -> bool:
        """Nothing lost and per-key order kept (duplicates and pending work are expected, not errors)."""
        return self.counts["sent_not_on_topic"] == 0 and self.counts["order_violations"] == 0

    def summary(self) -> str:
        found = ", ".join(f"{k} {v}" for k, v in self.counts.items())
        verdict = "OK" if self.ok else "PROBLEM"
        return f"{verdict} service {self.service} [{self.since}, {self.until}): {self.rows} rows, {found}"


class Auditor:
    def __init__(self, config: ServiceConfig, max_listed: int | None = 100, chunk_size: int = 5000) -> None:
        """``max_listed``: message ids listed per category (None: all of them)."""
        if not config.keeps_sent_rows:
            raise ConfigurationError(
                f"audit: service {config.service!r} has completion: {config.completion}, so its table keeps no "
                "sent rows to compare with the topic"
            )
        self.config = config
        self.store = OutboxStore(config)
        self.queries = self.store.audit
        self.max_listed = max_listed
        self.chunk_size = chunk_size

    def run(
        self, engine: Engine, consumer: Any, since: datetime, until: datetime | None = None
    ) -> AuditReport:
        """Rows created in ``[since, until)`` (DB time zone, naive; ``until`` defaults to now)."""
        rows, until, named = self._rows(engine, since, until)
        report = AuditReport(self.config.service, since.isoformat(sep=" "), until.isoformat(sep=" "))
        report.rows = len(rows)
        topics = sorted({*self.config.all_topics, *named} - {self.config.dead_letter_topic})
        records = read_back(consumer, topics, self.config.db_epoch_ms(since - CLOCK_MARGIN)) if topics else []
        report.records_read = len(records)
        self._compare(rows, records, report)
        return report

    def _rows(
        self, engine: Engine, since: datetime, until: datetime | None
    ) -> tuple[list[AuditedRow], datetime, set[str]]:
        """The window's rows, its end, and the topics its rows name (read back besides the config's)."""
        rows: list[AuditedRow] = []
        with engine.connect() as conn:
            end = until or self.queries.now(conn)
            after = self.store.cursor_start(conn)
            while True:
                chunk = self.queries.rows(conn, since, end, after, self.chunk_size)
                rows += chunk
                if len(chunk) < self.chunk_size:
                    return rows, end, self.queries.topics(conn, since, end)
                after = chunk[-1].row_id

    def _compare(
        self, rows: Sequence[AuditedRow], records: Sequence[TopicRecord], report: AuditReport
    ) -> None:
        rank = {r.message_id: n for n, r in enumerate(rows)}
        mine = [r for r in records if r.headers.get(HEADER_MESSAGE_ID) in rank]
        seen: dict[str, int] = defaultdict(int)
        for record in mine:
            seen[record.headers[HEADER_MESSAGE_ID]] += 1
        report.on_topic = len(seen)
        for row in rows:
            self._note(report, self._status_class(row, row.message_id in seen), row.message_id)
            copies = seen.get(row.message_id, 1) - 1
            if copies:
                self._note(report, "duplicates", row.message_id, copies)
        for message_id in order_violations(mine, rank):
            self._note(report, "order_violations", message_id)

    def _status_class(self, row: AuditedRow, on_topic: bool) -> str | None:
        """The row's class by its status and whether the topic has it (None: sent, done, nothing to say)."""
        st = self.config.statuses
        published = {st.sent, *(s for s in (st.confirmed,) if s is not None)}
        if row.status in published and not on_topic:
            return "sent_not_on_topic"
        if row.status == st.new:
            return "on_topic_not_marked" if on_topic else "not_sent"
        if st.failed is not None and row.status == st.failed:
            return "failed"
        if row.status == st.sent and self.config.confirmation is not None:
            return "unconfirmed"
        if st.confirmed is not None and row.status == st.confirmed:
            return "confirmed"
        return None

    def _note(self, report: AuditReport, category: str | None, message_id: str, times: int = 1) -> None:
        if category is None:
            return
        report.counts[category] += times
        report.ids[category] += 1
        if self.max_listed is None or len(report.listed[category]) < self.max_listed:
            report.listed[category].append(message_id)


class KeyedRecord(Protocol):
    """What the order rule reads of a record (``TopicRecord``, or another client's record type)."""

    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> Any: ...
    @property
    def headers(self) -> dict[str, str]: ...


def order_violations(records: Sequence[KeyedRecord], rank: dict[str, int]) -> list[str]:
    """Per key, messages must be first seen in row order (``rank``: message id -> position in claim
    order); a message seen again later is a duplicate consumers absorb, not a reordering. A key spread
    over several partitions has no order at all: the first message of each further partition counts."""
    by_key: dict[Any, list[KeyedRecord]] = defaultdict(list)
    for record in records:
        by_key[record.key].append(record)
    late: list[str] = []
    for key, group in by_key.items():
        if key is None:
            continue
        ordered = sorted(group, key=lambda r: (r.partition, r.offset))
        partitions = {r.partition for r in ordered}
        late += [
            next(r for r in ordered if r.partition == p).headers[HEADER_MESSAGE_ID]
            for p in sorted(partitions)[1:]
        ]
        first_seen: set[str] = set()
        newest = -1
        for record in ordered:
            message_id = record.headers[HEADER_MESSAGE_ID]
            if message_id in first_seen:
                continue
            first_seen.add(message_id)
            if rank[message_id] < newest:
                late.append(message_id)
            newest = max(newest, rank[message_id])
    return late
