"""Reading a consumer's inbox for the Outbox page (read-only): its rows by status, the last hour, when it
last saw a message, and the redeliveries it skipped (``inbox_duplicate``). Rows of one consumer are a
range of the primary key (consumer, message_id); times go through the received_at index."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.models import InboxRow
from outbox_relay.store.inbox import DUPLICATE_TABLE
from outbox_relay.store.naming import quote


@dataclass(frozen=True)
class SkippedRedeliveries:
    skipped: int
    last_message_id: str | None
    last_skipped_at: datetime | None


class InboxViewQueries:
    def __init__(self, consumer: str, table: str) -> None:
        self.table = table
        self.name = quote(table)
        self.params: dict[str, Any] = {"c": consumer}

    def by_status(self, conn: Connection) -> dict[str, int]:
        sql = text(f"SELECT status, COUNT(*) FROM {self.name} WHERE consumer = :c GROUP BY status")
        return {str(s): int(n) for s, n in conn.execute(sql, self.params)}

    def last_hour(self, conn: Connection) -> int:
        sql = text(
            f"SELECT COUNT(*) FROM {self.name} WHERE received_at >= NOW(6) - INTERVAL 1 HOUR AND consumer = :c"
        )
        return int(conn.execute(sql, self.params).scalar() or 0)

    def newest(self, conn: Connection, limit: int) -> list[InboxRow]:
        """The consumer's newest rows by receipt (the received_at index, read from its end)."""
        sql = text(
            f"SELECT message_id, topic, kafka_partition, kafka_offset, status, error, received_at FROM {self.name} "
            "WHERE consumer = :c ORDER BY received_at DESC LIMIT :n"
        )
        return [InboxRow(*r) for r in conn.execute(sql, {**self.params, "n": limit})]

    def skipped(self, conn: Connection) -> SkippedRedeliveries:
        sql = text(
            f"SELECT skipped, last_message_id, last_skipped_at FROM {DUPLICATE_TABLE} "
            "WHERE inbox_table = :t AND consumer = :c"
        )
        found = conn.execute(sql, {**self.params, "t": self.table}).first()
        return (
            SkippedRedeliveries(0, None, None)
            if found is None
            else SkippedRedeliveries(int(found[0]), found[1], found[2])
        )
