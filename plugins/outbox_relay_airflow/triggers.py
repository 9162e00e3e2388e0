"""Event-driven relays (``schedule: "@rows"``): a trigger in Airflow's triggerer watches a service's
table and starts its relay DAG only when rows are eligible, instead of a task run every minute.

The trigger asks one indexed ``SELECT id ... LIMIT 1`` per ``watch_seconds``; idle, that is all a service
costs (no scheduler-created runs, no task processes). When rows are there it yields one event (an asset
event on ``outbox://<service>``, which the relay DAG is scheduled on) and remembers the first eligible
row. It asks again when the first eligible row is another one (the relay got past it and new rows wait)
or the same row still waits after ``RELAY_GRACE_SECONDS``. Events that arrive while a run is queued or
running add at most one run after it. (Waiting for the table to be seen empty instead would stall
steady traffic: rows keep arriving between two looks, and the next run would wait for the grace.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)

RELAY_GRACE_SECONDS = 60.0  # the same first row still waits this long after an event: ask again


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
        asked: tuple[Any, float] | None = None  # the first eligible row when a run was asked for, and when
        try:
            while True:
                first = await asyncio.to_thread(probe.first_eligible)
                if first is None:
                    asked = None
                elif asked is None or first != asked[0] or time.monotonic() - asked[1] >= RELAY_GRACE_SECONDS:
                    # New work, or the relay got past the row it was asked for (rows came in behind it):
                    # ask again; events that arrive while a run is queued add at most one run after it.
                    asked = (first, time.monotonic())
                    log.info(
                        "service %s: rows are eligible (first: %s); starting its relay", self.service, first
                    )
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

    def first_eligible(self) -> Any:
        try:
            with self.engine.connect() as conn:
                return self.query.first_eligible(conn)
        except Exception as exc:  # the database is away: say so, keep watching (the relay would fail too)
            log.warning("could not look for eligible rows (%s: %s); trying again", type(exc).__name__, exc)
            return None

    def close(self) -> None:
        self.engine.dispose()
