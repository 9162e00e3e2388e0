"""The database half of exactly-once delivery: ``outbox_relay_progress``, one row per service and shard.

A batch's database transaction moves ``seq`` to the batch's sequence number together with its SENT
update, so the row says which of the relay's Kafka transactions are recorded here. ``scan_from`` is the
progress topic's offset from which a starting run must read to find every transaction not recorded yet.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, CursorResult, text
from sqlalchemy.exc import ProgrammingError

from outbox_relay.errors import ConfigurationError
from outbox_relay.store.mysql_errors import is_missing_table
from outbox_relay.store.naming import PROGRESS_TABLE

WHOLE_TABLE = -1  # the shard column's value for a run over the whole table


@dataclass(frozen=True)
class Checkpoint:
    """How far one relay (service and shard) is recorded: its last recorded batch, and where to read from."""

    shard: int | None
    seq: int
    scan_from: int


def _shard(shard: int | None) -> int:
    return WHOLE_TABLE if shard is None else shard


class ProgressCheckpoints:
    """The service's rows of ``outbox_relay_progress``."""

    def __init__(self, service: str) -> None:
        self.service = service

    def read(self, conn: Connection, shard: int | None) -> Checkpoint | None:
        """The checkpoint of ``shard`` (None: the whole table), None when the relay never ran exactly once."""
        found = (
            self._run(
                conn,
                f"SELECT seq, scan_from FROM {PROGRESS_TABLE} WHERE service = :service AND shard = :shard",
                shard,
            )
            .mappings()
            .first()
        )
        return None if found is None else Checkpoint(shard, int(found["seq"]), int(found["scan_from"]))

    def start(self, conn: Connection, shard: int | None, scan_from: int) -> None:
        """The row of a relay's first exactly-once run (nothing to read before ``scan_from``); an existing
        row is kept."""
        self._run(
            conn,
            f"INSERT IGNORE INTO {PROGRESS_TABLE} (service, shard, seq, scan_from) "
            "VALUES (:service, :shard, 0, :scan_from)",
            shard,
            scan_from=scan_from,
        )

    def advance(self, conn: Connection, shard: int | None, seq: int, scan_from: int | None = None) -> None:
        """``seq`` recorded (in the caller's transaction, with the batch's rows); never moves back, so a
        fenced relay's late commit of an older batch cannot undo a newer one's."""
        moved = "" if scan_from is None else ", scan_from = GREATEST(scan_from, :scan_from)"
        self._run(
            conn,
            f"UPDATE {PROGRESS_TABLE} SET seq = GREATEST(seq, :seq){moved} "
            "WHERE service = :service AND shard = :shard",
            shard,
            seq=seq,
            scan_from=scan_from,
        )

    def _run(self, conn: Connection, sql: str, shard: int | None, **params: object) -> CursorResult[Any]:
        try:
            return conn.execute(text(sql), {"service": self.service, "shard": _shard(shard), **params})
        except ProgrammingError as exc:
            if not is_missing_table(exc):
                raise
            raise ConfigurationError(
                f"service {self.service!r} delivers exactly once, which needs the table {PROGRESS_TABLE}; "
                "create it: outbox-relay ddl --shared-only --apply"
            ) from None
