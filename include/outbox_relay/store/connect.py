"""Database engines for the relay: READ COMMITTED, DB-side time zone, health-checked pool."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import URL, Engine, create_engine, text

from outbox_relay.errors import ConfigurationError

_OFFSET = re.compile(r"^[+-]\d{2}:\d{2}$")


def make_engine(
    url: str | URL,
    time_zone: str = "+00:00",
    pool_size: int = 5,
    ssl: dict[str, Any] | None = None,
    watching: bool = False,
) -> Engine:
    """An engine whose sessions use READ COMMITTED (so SKIP LOCKED and chunked deletes lock only
    what they touch) and the given session time zone (so ``NOW(6)`` matches the stored timestamps).
    ``ssl``: PyMySQL's TLS settings (``ca``, ``cert``, ``key``, ``check_hostname``, ...); None = no TLS.
    ``watching``: for the one-statement looks between runs (``WatchQuery.look``): autocommit, and neither
    a ping before nor a rollback after each use of a pooled connection (a look was four round trips: the
    ping, the query and two rollbacks); a connection the server dropped is replaced by the look itself."""
    if not _OFFSET.match(time_zone):
        raise ConfigurationError(f"time zone {time_zone!r} must be a UTC offset like '+00:00'")
    return create_engine(
        url,
        isolation_level="AUTOCOMMIT" if watching else "READ COMMITTED",
        pool_pre_ping=not watching,
        pool_reset_on_return=None if watching else "rollback",
        pool_recycle=3600,
        pool_size=pool_size,
        connect_args={
            # MariaDB caps JSON_ARRAYAGG, which hands the relay a claimed batch as one value, at
            # group_concat_max_len (1 MB by default); the server's max_allowed_packet still bounds it.
            "init_command": f"SET time_zone = '{time_zone}', group_concat_max_len = 4294967295",
            "connect_timeout": 10,
            **({"ssl": ssl} if ssl else {}),
        },
    )


def ping(engine: Engine) -> str:
    """Connect and return the server's version (the connection test of the Airflow UI and ``validate``)."""
    with engine.connect() as conn:
        return str(conn.execute(text("SELECT VERSION()")).scalar())
