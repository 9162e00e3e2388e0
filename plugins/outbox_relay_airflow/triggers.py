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
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, ClassVar, Protocol

from airflow.triggers.base import BaseEventTrigger, TriggerEvent

from outbox_relay.config import ServiceConfig
from outbox_relay_airflow.services_folder import read_service

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

    def __init__(self, service: str, watch_seconds: float = 5.0, services_dir: str | None = None) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # Airflow's base class is untyped
        self.service = service
        self.watch_seconds = watch_seconds
        self.services_dir = services_dir  # the folder the DAG was built from (None: the default one)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        kwargs = {
            "service": self.service,
            "watch_seconds": self.watch_seconds,
            "services_dir": self.services_dir,
        }
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    def _open(self) -> _Probe:
        raise NotImplementedError

    async def run(self) -> AsyncIterator[TriggerEvent]:
        opening = asyncio.ensure_future(asyncio.to_thread(self._open))
        try:
            probe = await asyncio.shield(opening)
        except asyncio.CancelledError:  # the thread opens on: close what it opened once it is done
            _close_after(opening, None)
            raise
        asked: tuple[Any, float] | None = None  # the mark when a run was asked for, and when
        looking: asyncio.Future[Any] | None = None
        try:
            while True:
                looking = asyncio.ensure_future(asyncio.to_thread(probe.look))
                try:
                    mark = await asyncio.shield(looking)
                except Exception as exc:  # the database or broker is away: say so, keep watching (the
                    # DAG's run would fail too)
                    log.warning(
                        "service %s: could not look for %s (%s: %s); trying again",
                        self.service,
                        self.watched,
                        type(exc).__name__,
                        exc,
                    )
                    mark = None
                if mark is None:
                    asked = None
                elif asked is None or mark != asked[0] or time.monotonic() - asked[1] >= GRACE_SECONDS:
                    asked = (mark, time.monotonic())
                    log.info("service %s: " + self.announce, self.service, mark)
                    yield TriggerEvent({"service": self.service})  # type: ignore[no-untyped-call]
                await asyncio.sleep(self.watch_seconds)
        finally:
            if looking is not None and not looking.done():  # cancelled while its thread still looks
                _close_after(looking, probe)
            else:
                await asyncio.to_thread(probe.close)


def _close_after(work: asyncio.Future[Any], probe: _Probe | None) -> None:
    """Close ``probe`` (None: the probe ``work`` opens) in a thread once ``work`` is done. A cancelled
    trigger's open or look runs on in its thread (a thread cannot be stopped): closing the probe then
    would let its clients go while that thread still uses them, or never close a probe opened late."""

    def close(done: asyncio.Future[Any]) -> None:
        failed = done.cancelled() or done.exception() is not None  # (retrieved: no "never retrieved")
        target = probe if probe is not None else None if failed else done.result()
        if target is not None:
            asyncio.get_running_loop().run_in_executor(None, target.close)

    work.add_done_callback(close)


class OutboxRowsTrigger(_WatchTrigger):
    announce = "rows are eligible (the first: %s); starting its relay"
    watched = "eligible rows"

    def _open(self) -> _Probe:
        return _RowsProbe(read_service(self.service, self.services_dir))


class ConfirmationsWaitingTrigger(_WatchTrigger):
    announce = "confirmations wait (the group's committed offsets: %s); starting their ingest"
    watched = "waiting confirmations"

    def _open(self) -> _Probe:
        return _LagProbe(read_service(self.service, self.services_dir))


class _SharedClients:
    """One client per key for every watching trigger of this triggerer (a triggerer runs all its triggers
    in one process): a hundred services on one database and one Kafka cluster hold one small connection
    pool and one Kafka client, not a hundred of each. Clients are opened one at a time. With ``close``, the
    last trigger to let go closes its client; without, clients are kept for the life of the process."""

    def __init__(self, open_: Callable[[Any], Any], close: Callable[[Any], None] | None) -> None:
        self._open, self._close = open_, close
        self._lock = threading.Lock()
        self._held: dict[Any, tuple[Any, int]] = {}  # key -> (client, triggers using it)

    def acquire(self, key: Any) -> Any:
        with self._lock:
            if key in self._held:
                client, users = self._held[key]
            else:
                client, users = self._open(key), 0
            self._held[key] = (client, users + 1)
            return client

    def release(self, key: Any) -> None:
        with self._lock:
            client, users = self._held[key]
            if users > 1 or self._close is None:
                self._held[key] = (client, users - 1)
                return
            del self._held[key]
        self._close(client)


def _open_engine(key: tuple[str, str]) -> Any:
    from outbox_relay_airflow.hooks import OutboxDatabaseHook

    conn_id, time_zone = key
    return OutboxDatabaseHook(conn_id).get_engine(time_zone, pool_size=WATCH_POOL_SIZE, watching=True)


def _open_admin(conn_id: str) -> Any:
    from outbox_relay_airflow.hooks import looking_admin_client

    return looking_admin_client(conn_id)


WATCH_POOL_SIZE = 2  # database connections kept per (connection, time zone); looks beyond it open more
ENGINES = _SharedClients(_open_engine, lambda engine: engine.dispose())
# Kafka admin clients are never let go (one per Kafka connection the services use, so a bounded number).
# A confluent-kafka client is destroyed when its Python object is freed, by whatever thread frees it. In the
# trigger runner a stopped trigger's probe is freed by the cyclic garbage collector (the greenback portal
# each trigger runs in leaves its frames in cycles), and the collector also runs on librdkafka's own
# threads when they call Python to deliver admin results: rd_kafka_destroy() there kills the process
# ("calling rd_kafka_destroy() from librdkafka owned thread is prohibited"; tests/integration/
# test_watch_churn.py drives triggers as the runner does and checks that no admin client is ever freed).
ADMIN_CLIENTS = _SharedClients(_open_admin, None)


class _RowsProbe:
    """The service's watch query on the engine shared by every watched table of its database connection
    (its file is read when the trigger starts)."""

    def __init__(self, config: ServiceConfig) -> None:
        from outbox_relay.database import OutboxStore

        self.query = OutboxStore(config).watch
        self.key = (config.connections.db, config.db_time_zone)
        self.engine = ENGINES.acquire(self.key)

    def look(self) -> Any:
        return self.query.look(self.engine)

    def close(self) -> None:
        ENGINES.release(self.key)


class _LagProbe:
    """The ingest group's lag on the confirmation topic, through the admin client shared by every watched
    service of the Kafka connection (built by the provider's hook; it never joins the group)."""

    def __init__(self, config: ServiceConfig) -> None:
        assert config.confirmation is not None, "validated: '@messages' needs a confirmation topic"
        self.topic, self.group = config.confirmation.topic, config.confirmation_group_id
        self.key = config.connections.kafka
        self.admin = ADMIN_CLIENTS.acquire(self.key)

    def look(self) -> Any:
        from outbox_relay.kafka.lag import group_lag

        lag = group_lag(self.admin, self.group, self.topic)
        return lag.committed if lag.waiting else None

    def close(self) -> None:
        ADMIN_CLIENTS.release(self.key)
