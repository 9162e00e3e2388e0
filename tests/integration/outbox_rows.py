"""Writing and reading outbox rows in tests."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.kafka.progress import relay_id
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.kafka.topics import ensure_progress_topic
from outbox_relay.kafka.transactions import TransactionalPublisher
from outbox_relay.models import RunStats
from outbox_relay.relay.engine import OutboxRelay, RunRequest
from outbox_relay.relay.exactly_once import ExactlyOnceClients
from outbox_relay.store.outbox import OutboxStore
from tests.conftest import BOOTSTRAP
from tests.integration.kafka_tools import producer


def insert_rows(
    engine: Engine, topic: str, keys: list[str], payload: Any = None, age_seconds: float = 0
) -> list[str]:
    """One standard outbox row per key (in order); returns their message ids."""
    ids = []
    with engine.begin() as conn:
        for i, key in enumerate(keys):
            mid = str(uuid.uuid4())
            body = payload if isinstance(payload, str) else json.dumps(payload or {"n": i, "key": key})
            conn.execute(
                text(
                    "INSERT INTO outbox_message (message_id, aggregate_id, event_type, topic, payload, created_at) "
                    "VALUES (:m, :k, 'Evt', :t, :p, NOW(6) - INTERVAL :age SECOND)"
                ),
                {"m": mid, "k": key, "t": topic, "p": body, "age": age_seconds},
            )
            ids.append(mid)
    return ids


def statuses(engine: Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r[0]: r[1] for r in conn.execute(text("SELECT message_id, status FROM outbox_message"))}


def sent_by(engine: Engine, config: ServiceConfig) -> dict[str, str | None]:
    """Message id -> the relay run that sent the row, as the store answers it (the row's relay_run_id, else
    its sent-range record), for every row of ``outbox_message``."""
    with engine.connect() as conn:
        rows = dict(conn.execute(text("SELECT id, message_id FROM outbox_message")).all())
        runs = OutboxStore(config).sent_by(conn, list(rows))
    return {message_id: runs.get(str(row_id)) for row_id, message_id in rows.items()}


def wait_for_status(engine: Engine, status: str, count: int, seconds: float) -> float:
    """Seconds until ``count`` rows of ``outbox_message`` have ``status`` (fails after ``seconds``)."""
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        with engine.connect() as conn:
            found = conn.execute(text("SELECT COUNT(*) FROM outbox_message WHERE status = :s"), {"s": status})
            if found.scalar() == count:
                return time.monotonic() - started
        time.sleep(0.5)
    raise AssertionError(f"{count} rows were not {status} within {seconds:g}s: {statuses(engine)}")


def relay_publisher(config: ServiceConfig, bootstrap: str = BOOTSTRAP) -> KafkaPublisher:
    """The publisher a relay task builds: the service's delivery timeout and flush timeout."""
    return KafkaPublisher(
        producer(
            bootstrap,
            **{"message.timeout.ms": config.kafka.delivery_timeout_ms, "linger.ms": config.kafka.linger_ms},
        ),
        config.kafka.flush_timeout_seconds,
    )


def run_relay(
    config: ServiceConfig,
    engine: Engine,
    run_id: str = "test_run",
    bootstrap: str = BOOTSTRAP,
    **request: Any,
) -> RunStats:
    return make_relay(config, engine, bootstrap, request.get("shard")).run(
        RunRequest(run_id=run_id, **request)
    )


def make_relay(
    config: ServiceConfig, engine: Engine, bootstrap: str = BOOTSTRAP, shard: int | None = None
) -> OutboxRelay:
    """The relay a task builds for the service's delivery mode (with plain clients instead of Airflow's)."""
    if config.delivery != "exactly_once":
        return OutboxRelay(config, engine, relay_publisher(config, bootstrap))
    clients = exactly_once_clients(config, shard, bootstrap)
    return OutboxRelay(config, engine, clients.publisher, exactly_once=clients)


def exactly_once_clients(
    config: ServiceConfig, shard: int | None = None, bootstrap: str = BOOTSTRAP
) -> ExactlyOnceClients:
    """What ``outbox_relay_airflow.relays.exactly_once_clients`` builds, from plain clients."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    ensure_progress_topic(admin, config)
    reader = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"progress-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    return ExactlyOnceClients(
        transactional(config, relay_id(config, shard), bootstrap),
        reader,
        admin,
        lambda other: transactional(config, other, bootstrap).start(),
    )


def transactional(
    config: ServiceConfig, transactional_id: str, bootstrap: str = BOOTSTRAP
) -> TransactionalPublisher:
    settings = {
        "message.timeout.ms": config.kafka.delivery_timeout_ms,
        "linger.ms": config.kafka.linger_ms,
        "transactional.id": transactional_id,
        "transaction.timeout.ms": config.kafka.transaction_timeout_ms,
    }
    return TransactionalPublisher(
        producer(bootstrap, **settings), config.kafka.flush_timeout_seconds, transactional_id
    )
