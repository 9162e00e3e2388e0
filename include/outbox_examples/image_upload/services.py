"""The services around the upload: image service and part service, on the request and consumer sides.

Request side: the image service records the image (PENDING) and the business service stores the
object under ``<folder>/<imageId>-<epochMillis>.<ext>``. Consumer side: both handlers run inside the
project's inbox transaction (``IdempotentConsumer``), and are idempotent on their own as well.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from confluent_kafka import Consumer, Producer
from sqlalchemy import Connection, Engine, text

from outbox_examples.image_upload.events import parse_key
from outbox_inbox.consumer import ConsumeStats, IdempotentConsumer, InboundMessage
from outbox_relay.kafka.publisher import KafkaPublisher

PART_SERVICE = "part"
IMAGE_CONSUMER = "image-service"
PART_CONSUMER = "part-service"


class ImageEventError(Exception):
    """The message names an image this service cannot apply it to; answered FAILED with this text."""


def register_image(conn: Connection, service: str) -> int:
    """Image service: a PENDING image row; its id goes into the object key."""
    result = conn.execute(text("INSERT INTO image (service) VALUES (:s)"), {"s": service})
    return int(result.lastrowid)


def create_part(conn: Connection, name: str) -> int:
    return int(conn.execute(text("INSERT INTO part (name) VALUES (:n)"), {"n": name}).lastrowid)


def request_part_image(conn: Connection, part_id: int) -> int:
    """Part service asks for an upload: image row + which part it is for (the original left this out
    and linked nothing it could look up)."""
    image_id = register_image(conn, PART_SERVICE)
    conn.execute(
        text("INSERT INTO part_image_request (image_id, part_id) VALUES (:i, :p)"),
        {"i": image_id, "p": part_id},
    )
    return image_id


def object_key(folder: str, image_id: int, epoch_millis: int, extension: str) -> str:
    return f"{folder}/{image_id}-{epoch_millis}.{extension}"


def _event(message: InboundMessage) -> dict[str, Any]:
    event = message.json()
    missing = [f for f in ("service", "image_id", "bucket", "key", "size", "event_time") if f not in event]
    if missing:
        raise ImageEventError(f"message {message.message_id} lacks field(s) {missing}")
    return dict(event)


def mark_image_ready(conn: Connection, message: InboundMessage) -> None:
    """Image service: set path + READY. Only a newer upload (epochMillis of the key) replaces the path,
    so a late or repeated message changes nothing."""
    event = _event(message)
    millis = parse_key(event["key"]).uploaded_millis
    row = conn.execute(
        text("SELECT service, uploaded_millis FROM image WHERE image_id = :i FOR UPDATE"),
        {"i": event["image_id"]},
    ).one_or_none()
    if row is None:
        raise ImageEventError(f"no image {event['image_id']} (key {event['key']!r})")
    if row[0] != event["service"]:
        raise ImageEventError(
            f"image {event['image_id']} belongs to {row[0]!r}, key is in folder {event['service']!r}"
        )
    if row[1] is not None and row[1] >= millis:
        return
    conn.execute(
        text(
            "UPDATE image SET status = 'READY', bucket = :b, path = :p, size = :s, uploaded_millis = :m "
            "WHERE image_id = :i"
        ),
        {"b": event["bucket"], "p": event["key"], "s": event["size"], "m": millis, "i": event["image_id"]},
    )
    conn.execute(
        text(
            "INSERT INTO image_change_log (image_id, path, uploaded_millis, message_id) VALUES (:i, :p, :m, :mid)"
        ),
        {"i": event["image_id"], "p": event["key"], "m": millis, "mid": message.message_id},
    )


def link_part_image(conn: Connection, message: InboundMessage) -> None:
    """Part service: only images in its own folder; links the part it requested the image for."""
    event = _event(message)
    if event["service"] != PART_SERVICE:
        return
    part_id = conn.execute(
        text("SELECT part_id FROM part_image_request WHERE image_id = :i"), {"i": event["image_id"]}
    ).scalar_one_or_none()
    if part_id is None:
        raise ImageEventError(
            f"part service never requested image {event['image_id']} (key {event['key']!r})"
        )
    changed = conn.execute(
        text("UPDATE part SET image_id = :i WHERE part_id = :p AND (image_id IS NULL OR image_id <> :i)"),
        {"i": event["image_id"], "p": part_id},
    ).rowcount
    if changed:
        conn.execute(
            text("INSERT INTO part_image_link_log (part_id, image_id, message_id) VALUES (:p, :i, :mid)"),
            {"p": part_id, "i": event["image_id"], "mid": message.message_id},
        )


HANDLERS = {IMAGE_CONSUMER: mark_image_ready, PART_CONSUMER: link_part_image}


def consume(
    engine: Engine,
    name: str,
    topic: str,
    bootstrap: str,
    group_id: str,
    result_topic: str,
    time_budget_seconds: float = 60,
) -> ConsumeStats:
    """Run one consumer (``image-service`` or ``part-service``) until its topic is idle."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group_id,
            "isolation.level": "read_committed",  # never what a relay's aborted transaction left
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 10000,
            "heartbeat.interval.ms": 1000,
        }
    )
    consumer.subscribe([topic])
    results = KafkaPublisher(
        Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"}), 30
    )
    try:
        service = IdempotentConsumer(name, engine, consumer, results, result_topic, HANDLERS[name])
        return service.run(time_budget_seconds=time_budget_seconds, idle_seconds=3)
    finally:
        consumer.close()


def consume_both(
    engine: Engine, topic: str, bootstrap: str, group_suffix: str, result_topic: str
) -> dict[str, ConsumeStats]:
    """Image service and part service side by side (each its own group, client and inbox rows)."""
    with ThreadPoolExecutor(max_workers=len(HANDLERS)) as pool:
        futures = {
            name: pool.submit(consume, engine, name, topic, bootstrap, f"{name}-{group_suffix}", result_topic)
            for name in HANDLERS
        }
        return {name: future.result() for name, future in futures.items()}
