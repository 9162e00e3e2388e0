"""Session locks on a table: one relay at a time, one backfill at a time. MySQL session locks die with
the connection of their holder, so a crashed or killed holder never leaves one behind."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy import Connection, text
from sqlalchemy.exc import ProgrammingError, SQLAlchemyError

from outbox_relay.store.mysql_errors import is_missing_table
from outbox_relay.store.naming import LOCK_BUSY_TABLE
from outbox_relay.store.table import OutboxTable

log = logging.getLogger(__name__)
T = TypeVar("T")

# GET_LOCK names are at most 64 characters; the database name keeps two schemas' tables apart.
_LOCK_NAME = "LEFT(CONCAT(:purpose, ':', DATABASE(), ':', :tbl), 64)"


class TableLock:
    """A named session lock on one table (of one row filter)."""

    def __init__(self, table: OutboxTable, purpose: str) -> None:
        self._params = {"tbl": table.lock_key, "purpose": purpose}

    def acquire(self, conn: Connection, wait_seconds: float) -> bool:
        """Wait up to ``wait_seconds`` for the lock. MySQL truncates a fractional wait (0.5 s would not
        wait at all), so there it is rounded up to whole seconds; MariaDB waits fractions."""
        wait = wait_seconds if getattr(conn.dialect, "is_mariadb", False) else math.ceil(wait_seconds)
        sql = text(f"SELECT GET_LOCK({_LOCK_NAME}, :wait)")
        got = conn.execute(sql, {**self._params, "wait": wait}).scalar()
        conn.commit()
        return bool(got)

    def holder(self, conn: Connection) -> int | None:
        """The connection id (``SHOW PROCESSLIST`` / ``KILL``) of the session holding the lock, or None."""
        held = conn.execute(text(f"SELECT IS_USED_LOCK({_LOCK_NAME})"), self._params).scalar()
        conn.commit()
        return None if held is None else int(held)

    def release(self, conn: Connection) -> None:
        _give_back(conn, lambda: conn.execute(text(f"DO RELEASE_LOCK({_LOCK_NAME})"), self._params))


def _give_back(conn: Connection, release: Callable[[], object]) -> None:
    """Release session locks; if the connection is broken, discard it (the server drops its locks with it)."""
    try:
        conn.rollback()
        release()
        conn.commit()
    except SQLAlchemyError:
        conn.invalidate()


# One lock per bucket of keys (the bucket first, so a long table name cannot cut it off).
_BUCKET_NAME = "LEFT(CONCAT(:purpose, '#', :bucket, ':', DATABASE(), ':', :tbl), 64)"


class RelayLock:
    """The relay's session locks on one table: one per bucket of keys (``ServiceConfig.shard_buckets``).
    A shard's relay holds its buckets; a whole-table run (an unsharded relay, a replay, a backfill chunk)
    holds them all. Runs whose rows may overlap share a bucket, so they take turns and per-key order
    holds; shards of one table run side by side. Buckets are taken in ascending order, so two runs
    never wait for each other in a cycle."""

    def __init__(self, table: OutboxTable, shard: int | None = None) -> None:
        self._params: dict[str, Any] = {"tbl": table.lock_key, "purpose": "outbox-relay"}
        self._buckets = table.config.shard_buckets(shard)

    def acquire(self, conn: Connection, wait_seconds: float) -> bool:
        """Wait up to ``wait_seconds`` in all for every bucket; on a timeout the buckets taken are given
        back. MySQL truncates a fractional wait (0.5 s would not wait at all), so there each wait is
        rounded up to whole seconds; MariaDB waits fractions."""
        mariadb = getattr(conn.dialect, "is_mariadb", False)
        deadline = time.monotonic() + wait_seconds
        sql = text(f"SELECT GET_LOCK({_BUCKET_NAME}, :wait)")
        for taken, bucket in enumerate(self._buckets):
            left = max(0.0, deadline - time.monotonic())
            wait = left if mariadb else math.ceil(left)
            if not conn.execute(sql, {**self._params, "bucket": bucket, "wait": wait}).scalar():
                self._release(conn, self._buckets[:taken])
                conn.commit()
                return False
        conn.commit()
        return True

    def holder(self, conn: Connection) -> int | None:
        """The connection id (``SHOW PROCESSLIST`` / ``KILL``) of a session holding one of these buckets
        (another run of the table), or None."""
        names = ", ".join(f"IS_USED_LOCK({_BUCKET_NAME.replace(':bucket', str(b))})" for b in self._buckets)
        held = conn.execute(text(f"SELECT COALESCE({names}, NULL)"), self._params).scalar()
        conn.commit()
        return None if held is None else int(held)

    def release(self, conn: Connection) -> None:
        _give_back(conn, lambda: self._release(conn, self._buckets))

    def _release(self, conn: Connection, buckets: tuple[int, ...]) -> None:
        if buckets:
            names = ", ".join(f"RELEASE_LOCK({_BUCKET_NAME.replace(':bucket', str(b))})" for b in buckets)
            conn.execute(text(f"DO {names}"), self._params)


def relay_lock(table: OutboxTable, shard: int | None = None) -> RelayLock:
    """Relays of one table take turns (per shard): per-key order then holds even when a backfill and a
    scheduled run overlap."""
    return RelayLock(table, shard)


def backfill_lock(table: OutboxTable) -> TableLock:
    """Held by a backfill for its whole run (it lets go of the relay lock between chunks): a second backfill
    of the table is refused, and a scheduled relay that finds the relay lock busy knows why."""
    return TableLock(table, "outbox-backfill")


class BusyRuns:
    """Relay runs in a row that found a service's relay lock held (``outbox_relay_lock_busy``): a count
    in the outbox database beside the lock itself, one row per service and shard, so it is the same
    whatever ran the relay and cannot grow. The next run that gets the lock deletes the row."""

    def __init__(self, service: str, shard: int | None) -> None:
        self._params = {"service": service, "shard": -1 if shard is None else shard}

    def count(self, conn: Connection, holder: int | None) -> int | None:
        """One more busy run; the runs in a row so far (None: the table is missing, so nothing is counted)."""
        return _unless_missing(conn, lambda: self._count(conn, holder))

    def _count(self, conn: Connection, holder: int | None) -> int:
        conn.execute(
            text(
                f"INSERT INTO {LOCK_BUSY_TABLE} (service, shard, busy_runs, holder) VALUES (:service, :shard, 1, "
                ":holder) ON DUPLICATE KEY UPDATE busy_runs = busy_runs + 1, holder = VALUES(holder)"
            ),
            {**self._params, "holder": holder},
        )
        found = conn.execute(
            text(f"SELECT busy_runs FROM {LOCK_BUSY_TABLE} WHERE service = :service AND shard = :shard"),
            self._params,
        ).scalar_one()
        conn.commit()
        return int(found)

    def clear(self, conn: Connection) -> None:
        """The lock was free: the runs in a row start again."""
        _unless_missing(conn, lambda: self._clear(conn))

    def _clear(self, conn: Connection) -> None:
        conn.execute(
            text(f"DELETE FROM {LOCK_BUSY_TABLE} WHERE service = :service AND shard = :shard"), self._params
        )
        conn.commit()


def _unless_missing(conn: Connection, statement: Callable[[], T]) -> T | None:
    """Run ``statement``; a missing busy-run table is logged and ignored (a relay must not fail for it)."""
    try:
        return statement()
    except ProgrammingError as exc:
        if not is_missing_table(exc):
            raise
        conn.rollback()
        log.warning(
            "%s is missing, so relay runs that find the lock held are not counted and a wedged holder is not "
            "reported; create it: outbox-relay ddl --shared-only --apply",
            LOCK_BUSY_TABLE,
        )
        return None
