"""The event-driven relay's probe on the real MariaDB: yes only while a row is eligible now (not waiting
for its retry time, not given up on, old enough for the threshold); one statement a look; a connection
the server dropped costs no failed look."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pymysql
import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.store.connect import make_engine
from outbox_relay.store.outbox import OutboxStore
from outbox_relay.store.watch import WatchQuery
from tests.integration.outbox_rows import insert_rows

pytestmark = pytest.mark.integration


@pytest.fixture
def watching(db_engine: Engine) -> Iterator[Engine]:
    """The triggers' kind of engine on the test's database, one pooled connection."""
    engine = make_engine(db_engine.url.render_as_string(hide_password=False), pool_size=1, watching=True)
    yield engine
    engine.dispose()


def _query(config: ServiceConfig) -> WatchQuery:
    return OutboxStore(config).watch


def _session_value(engine: Engine, sql: str) -> int:
    """One value read on the engine's pooled connection itself."""
    conn = engine.raw_connection()
    cursor = conn.cursor()
    try:
        cursor.execute(sql)
        return int(cursor.fetchone()[-1])
    finally:
        cursor.close()
        conn.close()


def test_the_probe_sees_only_rows_the_relay_would_claim(
    db_engine: Engine, watching: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    config = service_config(topic="t", schedule="@rows")
    assert _query(config).look(watching) is None
    (first,) = insert_rows(db_engine, "t", ["a"])
    assert _query(config).look(watching) is not None
    assert _query(service_config(topic="t", threshold_seconds=3600)).look(watching) is None  # too young
    with db_engine.begin() as conn:  # waiting for its retry time
        conn.execute(
            text("UPDATE outbox_message SET next_attempt_at = NOW(6) + INTERVAL 1 HOUR, attempts = 1")
        )
    assert _query(config).look(watching) is None
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET status = 'SENT' WHERE message_id = :m"), {"m": first})
    assert _query(config).look(watching) is None


def test_a_look_is_one_statement_on_the_server(
    db_engine: Engine, watching: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    """No rollback after it (nor a ping before it, which the server does not count as a statement): a
    hundred idle services on one database cost it 20 round trips a second at ``watch_seconds: 5``, not 80."""
    query = _query(service_config(topic="t", schedule="@rows"))
    insert_rows(db_engine, "t", ["a"])
    assert query.look(watching) is not None
    before = _session_value(watching, "SHOW SESSION STATUS LIKE 'Questions'")
    for _ in range(10):
        assert query.look(watching) is not None
    after = _session_value(watching, "SHOW SESSION STATUS LIKE 'Questions'")
    assert after - before == 10 + 1  # the ten looks and the second SHOW


def test_a_look_replaces_a_connection_the_server_dropped(
    db_engine: Engine, watching: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    """What a database restart or ``wait_timeout`` does to an idle pooled connection: the look asks again
    on a new one instead of failing (the triggers have no ping to find out first)."""
    query = _query(service_config(topic="t", schedule="@rows"))
    assert query.look(watching) is None
    dropped = _session_value(watching, "SELECT CONNECTION_ID()")
    with db_engine.begin() as conn:
        conn.execute(text(f"KILL CONNECTION {dropped}"))
    (message_id,) = insert_rows(db_engine, "t", ["a"])
    with db_engine.connect() as conn:
        row_id = conn.execute(
            text("SELECT id FROM outbox_message WHERE message_id = :m"), {"m": message_id}
        ).scalar()
    assert query.look(watching) == row_id
    assert _session_value(watching, "SELECT CONNECTION_ID()") != dropped


def test_a_look_at_a_missing_table_fails_naming_it(
    watching: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    """Only a dropped connection is asked again: any other error reaches the trigger, which logs it."""
    query = _query(service_config(topic="t", schedule="@rows", table="no_such_outbox"))
    with pytest.raises(pymysql.err.ProgrammingError, match="no_such_outbox"):
        query.look(watching)
