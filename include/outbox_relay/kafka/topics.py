"""Explicit topic creation: production clusters usually disable auto-creation."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import NewTopic  # type: ignore[attr-defined]

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import InfrastructureError

log = logging.getLogger(__name__)


# The progress topic keeps the newest record per relay (its key) for as long as the cluster lives; hourly
# segments let compaction drop older ones (a relay's first start reads the whole topic).
PROGRESS_TOPIC_SETTINGS = {"cleanup.policy": "compact", "segment.ms": "3600000"}


def service_topics(config: ServiceConfig) -> dict[str, int]:
    """Topic -> partition count for everything the service produces to or consumes (with ``delivery:
    exactly_once`` the progress topic too: one partition)."""
    topics = {name: config.kafka.partitions for name in config.all_topics}
    if config.confirmation is not None:
        topics.setdefault(config.confirmation.topic, config.confirmation.partitions)
    if config.delivery == "exactly_once":
        topics[config.kafka.progress_topic] = 1
    return topics


def topic_settings(config: ServiceConfig) -> dict[str, dict[str, str]]:
    """Topic settings the relay creates its topics with, beyond the broker's defaults."""
    if config.delivery != "exactly_once":
        return {}
    return {config.kafka.progress_topic: dict(PROGRESS_TOPIC_SETTINGS)}


def ensure_progress_topic(admin: Any, config: ServiceConfig) -> None:
    """The progress topic of ``delivery: exactly_once`` (compacted, one partition), created if missing."""
    topic = config.kafka.progress_topic
    ensure_topics(admin, {topic: 1}, config.kafka.replication_factor, settings=topic_settings(config))


def existing_topics(admin: Any, timeout: float = 10.0) -> set[str]:
    return set(admin.list_topics(timeout=timeout).topics)


def ensure_topics(
    admin: Any,
    wanted: dict[str, int],
    replication_factor: int,
    timeout: float = 10.0,
    settings: Mapping[str, dict[str, str]] | None = None,
) -> list[str]:
    """Create the missing topics (with their ``settings``); an existing topic is left as it is. Returns the
    names created."""
    missing = [name for name in wanted if name not in existing_topics(admin, timeout)]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                name,
                num_partitions=wanted[name],
                replication_factor=replication_factor,
                config=dict((settings or {}).get(name, {})),
            )
            for name in missing
        ],
        request_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result()
            created.append(name)
            log.info("created topic %s with %d partitions", name, wanted[name])
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise InfrastructureError(f"could not create topic {name!r}: {exc.args[0].str()}") from None
    wait_for_leaders(admin, {name: wanted[name] for name in missing}, timeout)
    return created


def wait_for_leaders(admin: Any, wanted: dict[str, int], timeout: float = 10.0) -> None:
    """Kafka creates a topic asynchronously: until each partition has a leader, a produce or an offset
    lookup meets UNKNOWN_TOPIC_OR_PART or NOT_LEADER. Wait for that instead of letting the first run race it."""
    deadline = time.monotonic() + timeout
    while True:
        topics = admin.list_topics(timeout=timeout).topics
        pending = sorted(
            name for name, partitions in wanted.items() if not _led(topics.get(name), partitions)
        )
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise InfrastructureError(
                f"topics {pending} still lack a leader for some partition {timeout:g}s after creation"
            )
        time.sleep(0.1)


def _led(topic: Any, partitions: int) -> bool:
    """The topic's metadata lists at least ``partitions`` partitions, each with a leader."""
    if topic is None or topic.error is not None:
        return False
    return len(topic.partitions) >= partitions and all(p.leader >= 0 for p in topic.partitions.values())


def missing_topics(admin: Any, names: Iterable[str], timeout: float = 10.0) -> list[str]:
    have = existing_topics(admin, timeout)
    return [n for n in names if n not in have]
