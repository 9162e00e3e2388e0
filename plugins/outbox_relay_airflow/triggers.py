"""Event-driven runs: a trigger in Airflow's triggerer watches something cheap and starts a service's DAG
only when there is work, instead of a task run every minute.

* ``schedule: "@rows"``: ``OutboxRowsTrigger`` asks one indexed ``SELECT id ... LIMIT 1`` of the table
  (the relay DAG is scheduled on the asset ``outbox://<service>``).
* ``confirm_schedule: "@messages"``: ``ConfirmationsWaitingTrigger`` asks the confirmation topic's end
  offsets and the ingest group's committed offsets, without joining the group (the confirmations DAG is
  scheduled on ``outbox-confirmations://<service>``).

Idle, that is all a service costs (no scheduler-created runs, no task processes). When work is there the
trigger yields one event and remembers what it saw: the first eligible row, or the group's committed
offsets. It asks again when that changed while work still waits (the last run got past it and more came
in) or the same work still waits after ``GRACE_SECONDS``. Events that arrive while a run is queued or
running add at most one run after it. (Waiting for the work to be seen gone instead would stall steady
traffic: rows keep arriving between two looks, and the next run would wait for the grace.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, ClassVar, Protocol

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

log = logging.getLogger(__name__)

GRACE_SECONDS = 60.0  # the same work still waits this long after an event: ask again


class _Probe(Protocol):
    def look(self) -> Any:
        """What marks the waiting work (None: nothing waits); a changed mark means a run made progress.
        May raise when the database or broker is away."""

    def close(self) -> None: ...


class _WatchTrigger(BaseEventTrigger):
    """The watch loop shared by the event-driven triggers; subclasses say what they watch."""

    announce: ClassVar[str]  # the log line of an event, "%s" being the mark
    watched: ClassVar[str]  # what a failed look was looking for, for its log line

    def __init__(self, service: str, watch_seconds: float = 5.0) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's base class is untyped
        self.service = service
        self.watch_seconds = watch_seconds

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"service": self.service, "watch_seconds": self.watch_seconds})  # fmt: skip

    def _open(self) -> _Probe:
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        probe = await asyncio.to_thread(self._open)
        asked: tuple[Any, float] | None = None  # the mark when a run was asked for, and when
        try:
            while True:
                try:
                    mark = await asyncio.to_thread(probe.look)
                except Exception as exc:  # the database or broker is away: say so, keep watching (the
                    # DAG's run would fail too)
                    log.warning("service %s: could not look for %s (%s: %s); trying again", self.service,
                                self.watched, type(exc).__name__, exc)  # fmt: skip
                    mark = None
                if mark is None:
                    asked = None
                elif asked is None or mark != asked[0] or time.monotonic() - asked[1] >= GRACE_SECONDS:
                    asked = (mark, time.monotonic())
                    log.info("service %s: " + self.announce, self.service, mark)
                    yield TriggerEvent({"service": self.service})  # type: ignore[no-untyped-call]
                await asyncio.sleep(self.watch_seconds)
        finally:
            await asyncio.to_thread(probe.close)


class OutboxRowsTrigger(_WatchTrigger):
    announce = "rows are eligible (the first: %s); starting its relay"
    watched = "eligible rows"

    def _open(self) -> _Probe:
        return _RowsProbe(self.service)


class ConfirmationsWaitingTrigger(_WatchTrigger):
    announce = "confirmations wait (the group's committed offsets: %s); starting their ingest"
    watched = "waiting confirmations"

    def _open(self) -> _Probe:
        return _LagProbe(self.service)


class _RowsProbe:
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

    def look(self) -> Any:
        with self.engine.connect() as conn:
            return self.query.first_eligible(conn)

    def close(self) -> None:
        self.engine.dispose()


class _LagProbe:
    """The ingest group's lag on the confirmation topic, through a consumer of that group that never
    subscribes (the provider's hook builds it from the service's Kafka connection)."""

    def __init__(self, service: str) -> None:
        from outbox_relay.config.loader import load_service
        from outbox_relay_airflow.hooks import OutboxConsumerHook

        config = load_service(service)
        assert config.confirmation is not None, "validated: '@messages' needs a confirmation topic"
        self.topic = config.confirmation.topic
        self.client = OutboxConsumerHook([], config.connections.kafka, config.confirmation_group_id).get_conn

    def look(self) -> Any:
        from outbox_relay.kafka.lag import group_lag

        lag = group_lag(self.client, self.topic)
        return lag.committed if lag.waiting else None

    def close(self) -> None:
        self.client.close()
