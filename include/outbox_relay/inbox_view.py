"""What the Outbox page shows of a consumer's inbox: processed, failed, still processing, the last hour,
when it last saw a message, the redeliveries it skipped, and its newest rows. Read-only."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from outbox_relay.config.settings import Inbox
from outbox_relay.models import InboxRow, StatsMixin
from outbox_relay.store.inbox_view import InboxViewQueries
from outbox_relay.store.mysql_errors import is_missing_table

__all__ = ["InboxFigures", "InboxRow", "InboxView"]


@dataclass
class InboxFigures(StatsMixin):
    consumer: str
    table: str
    db: str
    processed: int = 0  # answered SUCCESS
    failed: int = 0  # the handler raised: answered FAILED
    processing: int = 0  # received, not finished (a consumer that died mid-message rolls back: rare)
    last_hour: int = 0
    last_seen: datetime | None = None
    duplicates_skipped: int | None = None  # None: not counted (no inbox_duplicate table)
    last_duplicate_at: datetime | None = None
    last_duplicate_message_id: str | None = None
    problems: list[str] = field(default_factory=list)
    readable: bool = True  # False: the inbox table itself could not be read (see problems)


class InboxView:
    def __init__(self, inbox: Inbox, default_db: str) -> None:
        self.inbox = inbox
        self.db = inbox.db or default_db
        self.queries = InboxViewQueries(inbox.consumer, str(inbox.table))

    def figures(self, conn: Connection) -> InboxFigures:
        """The consumer's figures; a missing table or an unreachable database is a problem, not an error."""
        figures = InboxFigures(self.inbox.consumer, str(self.inbox.table), self.db)
        q = self.queries
        try:
            by_status = q.by_status(conn)
            figures.processed, figures.failed = by_status.get("SUCCESS", 0), by_status.get("FAILED", 0)
            figures.processing = by_status.get("PROCESSING", 0)
            figures.last_hour = q.last_hour(conn)
            newest = q.newest(conn, 1)
            figures.last_seen = newest[0].received_at if newest else None
        except DBAPIError as exc:
            conn.rollback()
            figures.readable = False
            figures.problems.append(f"inbox {self.inbox.table} on {self.db!r} could not be read: {exc.orig}")
            return figures
        try:
            skipped = q.skipped(conn)
        except DBAPIError as exc:
            conn.rollback()
            if not is_missing_table(exc):
                raise
            figures.problems.append(
                "redeliveries are not counted: create inbox_duplicate with 'outbox-relay ddl --inbox --apply'"
            )
            return figures
        figures.duplicates_skipped = skipped.skipped
        figures.last_duplicate_at, figures.last_duplicate_message_id = (
            skipped.last_skipped_at,
            skipped.last_message_id,
        )
        return figures

    def newest(self, conn: Connection, limit: int = 50) -> list[InboxRow]:
        return self.queries.newest(conn, max(1, min(limit, 500)))
