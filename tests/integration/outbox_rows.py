"""Writing and reading outbox rows in tests."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.models import RunStats
from outbox_relay.relay.engine import OutboxRelay, RunRequest
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
    publisher = relay_publisher(config, bootstrap)
    return OutboxRelay(config, engine, publisher).run(RunRequest(run_id=run_id, **request))
