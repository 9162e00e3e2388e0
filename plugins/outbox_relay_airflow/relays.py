"""The relay a service's runs send with, built from its Airflow connections: a plain one, or with
``delivery: exactly_once`` one whose batches are Kafka transactions (its progress topic created first)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from outbox_relay.kafka.progress import relay_id
from outbox_relay.kafka.topics import ensure_progress_topic
from outbox_relay.relay.engine import OutboxRelay
from outbox_relay.relay.exactly_once import ExactlyOnceClients
from outbox_relay_airflow.hooks import (
    admin_client,
    progress_reader,
    service_publisher,
    transactional_publisher,
)


@contextmanager
def service_relay(config: ServiceConfig, engine: Engine, shard: int | None = None) -> Iterator[OutboxRelay]:
    """The relay of one run of ``shard`` (None: the whole table); its clients are closed afterwards."""
    if config.delivery != "exactly_once":
        yield OutboxRelay(config, engine, service_publisher(config))
        return
    clients = exactly_once_clients(config, shard)
    try:
        yield OutboxRelay(config, engine, clients.publisher, exactly_once=clients)
    finally:
        with suppress(Exception):  # closing a consumer of a broker that is gone must not hide the run's error
            clients.consumer.close()


def exactly_once_clients(config: ServiceConfig, shard: int | None) -> ExactlyOnceClients:
    """The transactional publisher of ``shard``'s relay, a reader of the progress topic (created first if
    missing), and what fences the relays it overlaps with."""
    admin = admin_client(config.connections.kafka)
    ensure_progress_topic(admin, config)

    def fence(other: str) -> None:
        transactional_publisher(config, other).start()

    publisher = transactional_publisher(config, relay_id(config, shard))
    return ExactlyOnceClients(publisher, progress_reader(config), admin, fence)
