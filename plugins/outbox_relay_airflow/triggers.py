"""Event-driven relays (``schedule: "@rows"``): a trigger in Airflow's triggerer watches a service's
table and starts its relay DAG only when rows are eligible, instead of a task run every minute.

The trigger asks one indexed ``SELECT 1 ... LIMIT 1`` per ``watch_seconds``; idle, that is all a service
costs (no scheduler-created runs, no task processes). When rows are there it yields one event (an asset
event on ``outbox://<service>``, which the relay DAG is scheduled on), then waits until the relay has
drained them (or ``RELAY_GRACE_SECONDS`` passed) before it can ask for another run: events that arrive
while a run is queued or running would only add one more run after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)

RELAY_GRACE_SECONDS = 300.0  # after an event, ask again only once drained or after this long


class OutboxRowsTrigger(BaseEventTrigger):
    def __init__(self, service: str, watch_seconds: float = 5.0) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's base class is untyped
        self.service = service
        self.watch_seconds = watch_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"service": self.service, "watch_seconds": self.watch_seconds})  # fmt: skip

    async def run(self) -> AsyncIterator[TriggerEvent]:
        probe = await asyncio.to_thread(_Probe, self.service)
        asked_at: float | None = None
        try:
            while True:
                eligible = await asyncio.to_thread(probe.eligible)
                waiting_for_relay = asked_at is not None and time.monotonic() - asked_at < RELAY_GRACE_SECONDS
                if not eligible:
                    asked_at = None
                elif not waiting_for_relay:
                    asked_at = time.monotonic()
                    log.info("service %s: rows are eligible; starting its relay", self.service)
                    yield TriggerEvent({"service": self.service})  # type: ignore[no-untyped-call]
                await asyncio.sleep(self.watch_seconds)
        finally:
            await asyncio.to_thread(probe.close)


class _Probe:
    """The service's watch query on a one-connection engine (its file is read when the trigger starts)."""

    def __init__(self, service: str) -> None:
        from outbox_relay.config.loader import load_service
        from outbox_relay.store.retry_state import retry_state_for
        from outbox_relay.store.table import OutboxTable
        from outbox_relay.store.watch import WatchQuery
        from outbox_relay_airflow.hooks import db_engine

        config = load_service(service)
        table = OutboxTable(config)
        self.query = WatchQuery(table, retry_state_for(table))
        self.engine = db_engine(config, pool_size=1)

    def eligible(self) -> bool:
        try:
            with self.engine.connect() as conn:
                return self.query.has_eligible_rows(conn)
        except Exception as exc:  # the database is away: say so, keep watching (the relay would fail too)
            log.warning("could not look for eligible rows (%s: %s); trying again", type(exc).__name__, exc)
            return False

    def close(self) -> None:
        self.engine.dispose()
