"""The consumers' inbox table (``outbox-relay ddl --inbox``): one row per (consumer, message id).

The row is inserted in the same transaction as the consumer's business change, so a redelivered message
finds it and is answered from the stored result instead of being applied twice.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError, ProgrammingError

from outbox_relay.store.mysql_errors import is_duplicate_on, is_missing_table
from outbox_relay.store.naming import expanding, quote

DUPLICATE_TABLE = "inbox_duplicate"
log = logging.getLogger(__name__)


class InboxTable:
    def __init__(self, consumer: str, table: str = "inbox_message") -> None:
        self.consumer = consumer
        self.table = table
        self.name = quote(table)
        self._counts_duplicates = True  # until inbox_duplicate turns out to be missing

    def record_receipt(
        self, conn: Connection, message_id: str, topic: str, partition: int, offset: int
    ) -> bool:
        """Insert the PROCESSING record; False when this consumer has seen the message id before."""
        sql = text(
            f"INSERT INTO {self.name} (consumer, message_id, topic, kafka_partition, kafka_offset, status) "
            "VALUES (:consumer, :mid, :topic, :part, :off, 'PROCESSING')"
        )
        params = {
            "consumer": self.consumer,
            "mid": message_id,
            "topic": topic,
            "part": partition,
            "off": offset,
        }
        try:
            conn.execute(sql, params)
        except IntegrityError as exc:
            if not is_duplicate_on(exc, "PRIMARY"):  # only (consumer, message_id) says "seen before"
                raise
            return False
        return True

    def record_duplicate(self, conn: Connection, message_id: str) -> None:
        """Count a skipped redelivery (in ``inbox_duplicate``), in the caller's transaction. A database
        without that table (created before it existed) skips the count with one warning, never the
        message."""
        if not self._counts_duplicates:
            return
        sql = text(
            f"INSERT INTO {DUPLICATE_TABLE} (inbox_table, consumer, skipped, last_message_id, last_skipped_at) "
            "VALUES (:t, :c, 1, :m, NOW(6)) ON DUPLICATE KEY UPDATE skipped = skipped + 1, "
            "last_message_id = :m, last_skipped_at = NOW(6)"
        )
        savepoint = conn.begin_nested()
        try:
            conn.execute(sql, {"t": self.table, "c": self.consumer, "m": message_id})
        except ProgrammingError as exc:
            savepoint.rollback()
            if not is_missing_table(exc):
                raise
            self._counts_duplicates = False
            log.warning(
                "skipped redeliveries are not counted: table %s is missing (create it with "
                "'outbox-relay ddl --inbox --apply')",
                DUPLICATE_TABLE,
            )
            return
        savepoint.commit()

    def stored_result(self, conn: Connection, message_id: str) -> tuple[str, Any]:
        """(status, error) recorded for a message this consumer handled before."""
        sql = text(f"SELECT status, error FROM {self.name} WHERE consumer = :c AND message_id = :m")
        row = conn.execute(sql, {"c": self.consumer, "m": message_id}).one()
        return str(row[0]), row[1]

    def record_result(self, conn: Connection, message_id: str, status: str, error: str | None) -> None:
        sql = text(f"UPDATE {self.name} SET status = :s, error = :e WHERE consumer = :c AND message_id = :m")
        conn.execute(sql, {"s": status, "e": error, "c": self.consumer, "m": message_id})

    def purge(self, engine: Engine, older_than_days: float, chunk: int = 1000) -> int:
        """Delete this consumer's records older than ``older_than_days``, ``chunk`` ids per transaction."""
        select = text(
            f"SELECT message_id FROM {self.name} WHERE consumer = :c "
            "AND received_at < NOW(6) - INTERVAL :s SECOND ORDER BY message_id LIMIT :n"
        )
        delete = expanding(f"DELETE FROM {self.name} WHERE consumer = :c AND message_id IN :ids", "ids")
        deleted = 0
        while True:
            with engine.begin() as conn:
                params = {"c": self.consumer, "s": int(older_than_days * 86400), "n": chunk}
                ids = list(conn.execute(select, params).scalars())
                if not ids:
                    return deleted
                deleted += int(conn.execute(delete, {"c": self.consumer, "ids": ids}).rowcount)
