"""S3 event notification -> Kafka messages: the handler core, with no Airflow, AWS SDK or Kafka I/O.

A notification document holds ``Records``; every record is looked at (the original scheme read only
``Records[0]`` and silently dropped the rest). Each record ends up as exactly one of:

* a message for the image topic (``ImageUploaded``), keyed by image id, with a deterministic id so a
  redelivered notification produces the same id and consumers dedupe it;
* ignored: not for this handler (an ``s3:TestEvent``, a non-S3 source, a non-create event), logged;
* rejected: an S3 create event this handler cannot accept (empty object, not an image, key not in the
  ``<service-folder>/<imageId>-<epochMillis>.<ext>`` format...), with a reason naming the record and the
  field. Rejects are published to a dead-letter topic, so nothing the store reported is dropped unseen.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "gif", "webp", "bmp", "tif", "tiff", "heic", "avif"})
EVENT_TYPE = "ImageUploaded"
REJECT_EVENT_TYPE = "ImageUploadRejected"
# uuid5 namespace of this handler's message ids: same event -> same id, on every host and every run.
MESSAGE_ID_NAMESPACE = uuid.UUID("6f1d3c8e-3a52-5d0b-9a8e-7f0c1b2a4d61")
_FILE_NAME = re.compile(r"^(?P<image_id>[0-9]{1,18})-(?P<millis>[0-9]{1,15})\.(?P<ext>[A-Za-z0-9]{1,10})$")


class RecordRejectedError(ValueError):
    """An S3 create event that cannot become an image message; the text says which field is wrong."""


@dataclass(frozen=True)
class ImageKey:
    """What the object key says: ``<service-folder>/<imageId>-<epochMillis>.<ext>``."""

    service: str
    image_id: int
    uploaded_millis: int
    extension: str


@dataclass(frozen=True)
class ImageUploaded:
    """One accepted record: the Kafka message body plus its key and deterministic id."""

    message_id: str
    service: str
    image_id: int
    bucket: str
    key: str
    size: int
    event_time: str
    uploaded_millis: int

    def body(self) -> dict[str, Any]:
        return {
            "service": self.service,
            "image_id": self.image_id,
            "bucket": self.bucket,
            "key": self.key,
            "size": self.size,
            "event_time": self.event_time,
        }


@dataclass(frozen=True)
class Rejected:
    """A record (or a whole document) that was for this handler but cannot be accepted."""

    message_id: str
    where: str
    reason: str
    record: Any
    key: str | None = None


@dataclass(frozen=True)
class Ignored:
    where: str
    reason: str


@dataclass
class ParsedNotification:
    accepted: list[ImageUploaded] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)
    ignored: list[Ignored] = field(default_factory=list)


def parse_key(raw_key: str) -> ImageKey:
    """Split a decoded object key; strict, so a key another system wrote is not mistaken for an image."""
    parts = raw_key.split("/")
    if len(parts) != 2 or not parts[0].strip() or not parts[1]:
        raise RecordRejectedError(
            f"key {raw_key!r} is not '<service-folder>/<imageId>-<epochMillis>.<ext>' (one folder level)"
        )
    folder, name = parts
    extension = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if extension not in IMAGE_EXTENSIONS:
        raise RecordRejectedError(
            f"key {raw_key!r} has extension {extension!r}, not an image ({', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    match = _FILE_NAME.match(name)
    if match is None:
        raise RecordRejectedError(
            f"file name {name!r} of key {raw_key!r} is not '<imageId>-<epochMillis>.<ext>' (digits-digits.ext)"
        )
    return ImageKey(folder, int(match["image_id"]), int(match["millis"]), extension)


def decode_key(encoded: str) -> str:
    """S3 event keys are form-encoded: ``+`` is a space and ``%2B`` a literal plus (unquote_plus)."""
    return unquote_plus(encoded, encoding="utf-8", errors="strict")


def _required(mapping: Any, path: str) -> Any:
    value: Any = mapping
    for name in path.split("."):
        if not isinstance(value, Mapping) or name not in value:
            raise RecordRejectedError(f"field {path!r} is missing")
        value = value[name]
    return value


def message_id_for(bucket: str, key: str, s3_object: Mapping[str, Any], event_time: str) -> str:
    """Same event -> same id. S3 orders events of one key by ``sequencer``; a store that sends none
    (moto, some S3-compatible stores) is identified by eTag + event time instead."""
    sequencer = s3_object.get("sequencer")
    if sequencer:
        identity = f"s3|{bucket}|{key}|seq|{sequencer}"
    else:
        identity = f"s3|{bucket}|{key}|etag|{s3_object.get('eTag', '')}|{event_time}"
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, identity))


def _size(s3_object: Mapping[str, Any], key: str) -> int:
    size = _required(s3_object, "size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise RecordRejectedError(f"field 's3.object.size' of {key!r} is {size!r}, not an integer")
    if size < 1:
        raise RecordRejectedError(f"object {key!r} is empty (s3.object.size={size})")
    return size


def parse_record(record: Mapping[str, Any]) -> ImageUploaded | Ignored:
    """One record -> message or ignored; raises ``RecordRejectedError`` for a create event it refuses."""
    source = record.get("eventSource")
    if source != "aws:s3":
        return Ignored("", f"eventSource {source!r} is not 'aws:s3'")
    event_name = str(record.get("eventName", ""))
    if not event_name.startswith("ObjectCreated:"):
        return Ignored("", f"eventName {event_name!r} is not ObjectCreated:*")
    bucket = _required(record, "s3.bucket.name")
    encoded = _required(record, "s3.object.key")
    event_time = _required(record, "eventTime")
    if not all(isinstance(v, str) and v for v in (bucket, encoded, event_time)):
        raise RecordRejectedError(
            "fields 's3.bucket.name', 's3.object.key', 'eventTime' must be non-empty text"
        )
    try:
        key = decode_key(encoded)
    except UnicodeDecodeError as exc:
        raise RecordRejectedError(f"key {encoded!r} does not URL-decode to UTF-8: {exc.reason}") from None
    s3_object = record["s3"]["object"]
    size = _size(s3_object, key)
    parsed = parse_key(key)
    return ImageUploaded(
        message_id=message_id_for(bucket, key, s3_object, event_time),
        service=parsed.service,
        image_id=parsed.image_id,
        bucket=bucket,
        key=key,
        size=size,
        event_time=event_time,
        uploaded_millis=parsed.uploaded_millis,
    )


def _reject_id(record: Any) -> str:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    return str(uuid.uuid5(MESSAGE_ID_NAMESPACE, "reject|" + hashlib.sha256(canonical.encode()).hexdigest()))


def _rejected(where: str, reason: str, record: Any) -> Rejected:
    key = None
    if isinstance(record, Mapping):
        try:
            key = decode_key(str(record["s3"]["object"]["key"]))
        except (KeyError, TypeError, UnicodeDecodeError):
            key = None
    return Rejected(_reject_id(record), where, reason, record, key)


def load_document(body: str | bytes | Mapping[str, Any]) -> Mapping[str, Any]:
    """The notification as a mapping; raises ``RecordRejectedError`` for a body that is not one."""
    if isinstance(body, Mapping):
        return body
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise RecordRejectedError(f"notification is not JSON: {exc}") from None
    if not isinstance(document, Mapping):
        raise RecordRejectedError(f"notification is a JSON {type(document).__name__}, not an object")
    return document


def parse_notification(
    body: str | bytes | Mapping[str, Any], where: str = "notification"
) -> ParsedNotification:
    """Every record of one notification document, in order. ``where`` prefixes the positions in reasons."""
    result = ParsedNotification()
    try:
        document = load_document(body)
    except RecordRejectedError as exc:
        text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
        result.rejected.append(_rejected(where, str(exc), text))
        return result
    if document.get("Event") == "s3:TestEvent":
        result.ignored.append(Ignored(where, f"s3:TestEvent for bucket {document.get('Bucket')!r}"))
        return result
    records = document.get("Records")
    if not isinstance(records, list):
        result.rejected.append(_rejected(where, "document has no 'Records' list", document))
        return result
    for index, record in enumerate(records):
        position = f"{where} Records[{index}]"
        if not isinstance(record, Mapping):
            result.rejected.append(_rejected(position, "record is not a JSON object", record))
            continue
        try:
            outcome = parse_record(record)
        except RecordRejectedError as exc:
            result.rejected.append(_rejected(position, str(exc), record))
            continue
        if isinstance(outcome, Ignored):
            result.ignored.append(Ignored(position, outcome.reason))
        else:
            result.accepted.append(outcome)
    return result
