"""The scenario's workload and its checks, shared by the demo and the end-to-end test.

Uploads through the real S3 API (the store notifies the queue by itself) plus notifications written
by hand onto the queue; afterwards the topic and both services' tables are compared with what the
workload says must have happened.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import quote_plus

from sqlalchemy import Engine, text

from outbox_examples.demo_support import topic_records
from outbox_examples.image_upload.events import parse_key
from outbox_examples.image_upload.objectstore import s3_record, send_notification, upload
from outbox_examples.image_upload.services import (
    create_part,
    object_key,
    register_image,
    request_part_image,
)

JPEG = b"\xff\xd8\xff\xe0" + b"image-bytes" * 20
OTHER_FOLDER = "galería de fotos"  # spaces and non-ASCII: arrives as galer%C3%ADa+de+fotos%2F...
BASE_MILLIS = 1680862599359


@dataclass
class Expected:
    """What must hold once everything was relayed and consumed."""

    ready: dict[int, str] = field(default_factory=dict)  # image id -> final decoded key
    pending: list[int] = field(default_factory=list)  # images whose only upload was rejected
    linked: dict[int, int] = field(default_factory=dict)  # part id -> image id
    upload_order: dict[int, list[int]] = field(
        default_factory=dict
    )  # image id -> epochMillis in upload order
    accepted_records: int = 0
    rejected_records: int = 0
    ignored_records: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, raw: str) -> Expected:
        data = json.loads(raw)
        return cls(
            ready={int(k): v for k, v in data["ready"].items()},
            pending=data["pending"],
            linked={int(k): v for k, v in data["linked"].items()},
            upload_order={int(k): v for k, v in data["upload_order"].items()},
            accepted_records=data["accepted_records"],
            rejected_records=data["rejected_records"],
            ignored_records=data["ignored_records"],
        )


class Workload:
    """Uploads ``parts`` part images (every third one uploaded twice) and the edge cases."""

    def __init__(self, engine: Engine, s3: Any, sqs: Any, bucket: str, queue_url: str) -> None:
        self.engine, self.s3, self.sqs = engine, s3, sqs
        self.bucket, self.queue_url = bucket, queue_url
        self.expected = Expected(ignored_records=1)  # the s3:TestEvent sent when notifications were set
        self.millis = BASE_MILLIS

    def _tick(self) -> int:
        self.millis += 1000
        return self.millis

    def _part_image(self) -> tuple[int, int]:
        with self.engine.begin() as conn:
            part_id = create_part(conn, f"part {self.millis}")
            return part_id, request_part_image(conn, part_id)

    def _accepted(self, image_id: int, key: str) -> None:
        self.expected.ready[image_id] = key
        self.expected.upload_order.setdefault(image_id, []).append(parse_key(key).uploaded_millis)
        self.expected.accepted_records += 1

    def run(self, parts: int) -> Expected:
        for n in range(parts):
            part_id, image_id = self._part_image()
            for _version in range(2 if n % 3 == 0 else 1):
                key = object_key("part", image_id, self._tick(), "jpg")
                upload(self.s3, self.bucket, key, JPEG)
                self._accepted(image_id, key)
            self.expected.linked[part_id] = image_id
        self._edge_uploads()
        self._hand_made()
        return self.expected

    def _edge_uploads(self) -> None:
        _part, empty_id = self._part_image()
        upload(self.s3, self.bucket, object_key("part", empty_id, self._tick(), "jpg"), b"")
        _part, text_id = self._part_image()
        upload(self.s3, self.bucket, object_key("part", text_id, self._tick(), "txt"), b"notes", "text/plain")
        self.expected.pending += [empty_id, text_id]
        self.expected.rejected_records += 2
        with self.engine.begin() as conn:
            gallery_id = register_image(conn, OTHER_FOLDER)
        key = object_key(OTHER_FOLDER, gallery_id, self._tick(), "png")
        upload(self.s3, self.bucket, key, JPEG, "image/png")
        self._accepted(gallery_id, key)

    def _hand_made(self) -> None:
        """A store that batches several records in one document (with sequencers), and foreign events."""
        part_id, image_id = self._part_image()
        first, second = (object_key("part", image_id, self._tick(), "png") for _ in range(2))
        records = [
            s3_record(self.bucket, quote_plus(first), 2048, sequencer="0061A1B2C3D4E5F601"),
            s3_record(self.bucket, quote_plus(first), 2048, "ObjectRemoved:Delete", "0061A1B2C3D4E5F602"),
            s3_record(self.bucket, quote_plus(second), 4096, sequencer="0061A1B2C3D4E5F603"),
            s3_record(self.bucket, quote_plus("part/readme.txt"), 10, sequencer="0061A1B2C3D4E5F604"),
        ]
        send_notification(self.sqs, self.queue_url, {"Records": records})
        self._accepted(image_id, first)
        self._accepted(image_id, second)
        self.expected.linked[part_id] = image_id
        self.expected.rejected_records += 1
        self.expected.ignored_records += 1
        foreign = s3_record(self.bucket, "x", 1, "ObjectCreated:Put", source="aws:sqs")
        send_notification(self.sqs, self.queue_url, {"Records": [foreign]})
        self.expected.ignored_records += 1


class DeletesLost:
    """Failure injection: the drain's host dies after Kafka acknowledged and before SQS deleted. The
    queue is the real one; only the delete answer is replaced, so every notification comes back."""

    def __init__(self, sqs: Any) -> None:
        self.sqs = sqs

    def receive_message(self, **kwargs: Any) -> Any:
        return self.sqs.receive_message(**kwargs)

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        return {
            "Failed": [
                {"Id": e["Id"], "Code": "Crash", "Message": "host died before deleting"} for e in Entries
            ]
        }


@dataclass
class Observed:
    ready_ok: int
    ready_wrong: list[str]
    pending_ok: int
    linked_ok: int
    linked_wrong: list[str]
    duplicate_effects: int


def observe(engine: Engine, expected: Expected) -> Observed:
    """Both services' tables against the expectations."""
    with engine.connect() as conn:
        images = {r[0]: (r[1], r[2]) for r in conn.execute(text("SELECT image_id, status, path FROM image"))}
        parts: dict[int, int | None] = dict(
            conn.execute(text("SELECT part_id, image_id FROM part")).tuples().all()
        )
        dup_images = conn.execute(
            text(
                "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) n FROM image_change_log "
                "GROUP BY image_id, uploaded_millis) x"
            )
        ).scalar_one()
        dup_links = conn.execute(
            text(
                "SELECT COALESCE(SUM(n - 1), 0) FROM (SELECT COUNT(*) n FROM part_image_link_log GROUP BY image_id) x"
            )
        ).scalar_one()
    ready_wrong = [
        f"image {i}: {images.get(i)} != READY {key!r}"
        for i, key in expected.ready.items()
        if images.get(i) != ("READY", key)
    ]
    linked_wrong = [
        f"part {p}: image {parts.get(p)} != {i}" for p, i in expected.linked.items() if parts.get(p) != i
    ]
    return Observed(
        ready_ok=len(expected.ready) - len(ready_wrong),
        ready_wrong=ready_wrong,
        pending_ok=sum(1 for i in expected.pending if images.get(i) == ("PENDING", None)),
        linked_ok=len(expected.linked) - len(linked_wrong),
        linked_wrong=linked_wrong,
        duplicate_effects=int(dup_images) + int(dup_links),
    )


@dataclass(frozen=True)
class TopicRecord:
    key: str | None
    message_id: str
    body: dict[str, Any]


def order_violations(records: list[TopicRecord], expected: Expected) -> list[str]:
    """Per image id, the first copy of each message must follow the upload order (epochMillis)."""
    seen: set[str] = set()
    per_key: dict[str, list[int]] = defaultdict(list)
    for record in records:
        if record.message_id in seen:
            continue
        seen.add(record.message_id)
        per_key[str(record.key)].append(parse_key(record.body["key"]).uploaded_millis)
    return [
        f"image {image_id}: topic order {per_key.get(str(image_id))} != upload order {order}"
        for image_id, order in expected.upload_order.items()
        if per_key.get(str(image_id)) != order
    ]


def copies_per_message(records: list[TopicRecord]) -> Counter[str]:
    return Counter(r.message_id for r in records)


def read_topic(topic: str, bootstrap: str) -> list[TopicRecord]:
    """Everything on the image topic in partition order, read back with kafka-python (a second client)."""
    return [
        TopicRecord(
            None if r.key is None else r.key.decode(),
            dict(r.headers or []).get("outbox-message-id", b"").decode(),
            json.loads(r.value),
        )
        for r in topic_records(topic, bootstrap)
    ]
