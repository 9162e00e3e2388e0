"""The event-driven relay's probe on the real MariaDB: yes only while a row is eligible now (not waiting
for its retry time, not given up on, old enough for the threshold)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.store.retry_state import retry_state_for
from outbox_relay.store.table import OutboxTable
from outbox_relay.store.watch import WatchQuery
from tests.integration.outbox_rows import insert_rows

pytestmark = pytest.mark.integration


def _eligible(engine: Engine, config: ServiceConfig) -> bool:
    table = OutboxTable(config)
    with engine.connect() as conn:
        return WatchQuery(table, retry_state_for(table)).first_eligible(conn) is not None


def test_the_probe_sees_only_rows_the_relay_would_claim(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    config = service_config(topic="t", schedule="@rows")
    assert not _eligible(db_engine, config)
    (first,) = insert_rows(db_engine, "t", ["a"])
    assert _eligible(db_engine, config)
    assert not _eligible(db_engine, service_config(topic="t", threshold_seconds=3600))  # too young
    with db_engine.begin() as conn:  # waiting for its retry time
        conn.execute(
            text("UPDATE outbox_message SET next_attempt_at = NOW(6) + INTERVAL 1 HOUR, attempts = 1")
        )
    assert not _eligible(db_engine, config)
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET status = 'SENT' WHERE message_id = :m"), {"m": first})
    assert not _eligible(db_engine, config)
