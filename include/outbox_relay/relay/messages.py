"""Turning a claimed row into a Kafka message: key, topic, headers, body, partition.

Everything a row's data can get wrong raises ``PoisonRowError`` naming the problem (that row fails and
is retried or given up on); any other exception here is a bug and crashes the run.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from outbox_relay.config import ServiceConfig
from outbox_relay.config.fields import check_topic
from outbox_relay.errors import PoisonRowError
from outbox_relay.kafka.records import (
    HEADER_ERROR,
    HEADER_EVENT_TYPE,
    HEADER_MESSAGE_ID,
    HEADER_ORIGINAL_TOPIC,
    HEADER_REPLAY,
    HEADER_ROW_ID,
    HEADER_SERVICE,
    HEADER_SOURCE_TABLE,
    OutboundMessage,
)
from outbox_relay.models import OutboxRow

_new_tuple = tuple.__new__  # a NamedTuple built without its keyword-parsing ``__new__`` (once per row)


def _extra_headers(stored: Any) -> list[tuple[str, bytes]]:
    """The row's own headers (a JSON object, or a dict from ``json_values.headers``)."""
    extra = stored if isinstance(stored, dict) else _json_object(stored)
    if not isinstance(extra, dict):
        raise PoisonRowError("headers column must hold a JSON object")
    return [(str(k), str(v).encode()) for k, v in extra.items()]


def _json_object(text: Any) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:  # json.JSONDecodeError and bad UTF-8 alike
        raise PoisonRowError(f"headers column is not valid JSON ({exc})") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    raise TypeError(f"cannot encode {type(value).__name__} as JSON")


def encode_body(row: OutboxRow, fmt: str) -> bytes:
    """The Kafka value for a row; raises ``PoisonRowError`` naming the problem for poison rows."""
    body = row.body
    if isinstance(body, dict):
        return json.dumps(body, default=_json_default, separators=(",", ":")).encode()
    if body is None:
        raise PoisonRowError("payload is NULL")
    textual = isinstance(body, str)
    data = body.encode("utf-8") if textual else bytes(body)
    # The server's JSON_VALID() is trusted only for text columns: for binary ones MariaDB accepts invalid
    # UTF-8 and MySQL says 0 for everything. A "no" is checked again here: MariaDB says 0 beyond 32
    # levels of nesting, and such documents are valid.
    if fmt == "json" and not (row.valid_json is True and textual):
        check_json(data)
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def check_json(data: bytes) -> None:
    """RFC 8259 JSON in UTF-8, or ``PoisonRowError`` naming what is wrong (Python's parser alone would
    accept NaN and Infinity, and guess UTF-16)."""
    try:
        json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise PoisonRowError(f"payload is not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except RecursionError:
        raise PoisonRowError(
            "payload nests deeper than the relay's JSON check allows (about 900 levels)"
        ) from None
    except ValueError as exc:
        raise PoisonRowError(f"payload is not valid JSON ({exc})") from None


def partition_of(value: Any) -> int | None:
    """The row's partition column: NULL = by key; anything but a non-negative integer fails the row
    (librdkafka would read -1 as 'any partition')."""
    if value is None:
        return None
    try:
        partition = int(value)
    except (TypeError, ValueError):
        raise PoisonRowError(f"partition {value!r} is not an integer") from None
    if partition < 0 or str(partition) != str(value).strip():
        raise PoisonRowError(f"partition {value!r} must be a non-negative integer")
    return partition


def _missing(config: ServiceConfig, logical: str, what: str) -> str | None:
    """The error of a row without ``logical``, naming where it should have been (None: not mapped)."""
    column = getattr(config.columns, logical)
    if column is not None:
        return f"{what} column {column!r} is NULL" + (" or empty" if logical == "message_id" else "")
    found = config.json_values.values().get(logical)
    if found is not None:
        paths = " nor ".join(v.path for v in found)
        return (
            f"{what} path {paths} not found in columns.{found[0].column} (absent or null, or not valid JSON)"
        )
    return None


class MessageBuilder:
    """Built once per run; ``message`` runs once per row (a few µs of the relay's CPU per message), so it
    reads plain attributes, keeps the headers that are the same for every row, and checks a topic once."""

    def __init__(self, config: ServiceConfig) -> None:
        self._registered_topics = frozenset(config.all_topics) if config.topics else frozenset()
        self._valid_topics: set[str] = set()
        self._key_missing = _missing(config, "key", "key")
        self._message_id_missing = _missing(config, "message_id", "message id")
        body = config.json_values.body
        self._body_missing = None if body is None else f"payload has no {body} (or is not valid JSON)"
        self._payload_format = config.payload.format
        self._source_headers = (
            (HEADER_SERVICE, config.service.encode()),
            (HEADER_SOURCE_TABLE, config.table.encode()),
        )
        self._event_types: dict[Any, tuple[str, bytes]] = {}  # event type -> its header, encoded once
        self._text_needs_check = config.payload.format == "json"  # unless the server said JSON_VALID

    def message(self, ref: int, row: OutboxRow, replay: bool) -> OutboundMessage:
        message_id = row.message_id
        if not message_id:
            raise PoisonRowError(self._message_id_missing or "message id is empty")
        key = row.key
        if key is None and self._key_missing is not None:
            raise PoisonRowError(self._key_missing)
        body = row.body
        if body is None and self._body_missing is not None:
            raise PoisonRowError(self._body_missing)
        topic = row.topic
        if topic not in self._valid_topics:
            topic = self._check_topic(topic)
        headers = self.headers(row, replay)
        if type(body) is str and (row.valid_json is True or not self._text_needs_check):
            value = body.encode()
        else:
            value = encode_body(row, self._payload_format)
        encoded_key = key.encode() if type(key) is str else None if key is None else str(key).encode()
        partition = row.partition
        return _new_tuple(
            OutboundMessage,
            (ref, topic, encoded_key, value, headers, None if partition is None else partition_of(partition)),
        )

    def headers(self, row: OutboxRow, replay: bool) -> list[tuple[str, bytes]]:
        """The headers every relayed message carries, then the row's own (``PoisonRowError`` when those are
        not a JSON object)."""
        service, table = self._source_headers
        headers = [
            (HEADER_MESSAGE_ID, row.message_id.encode()),
            service,
            table,
            (HEADER_ROW_ID, str(row.row_id).encode()),
        ]
        event_type = row.event_type
        if event_type:
            header = self._event_types.get(event_type)
            if header is None:
                header = self._event_types[event_type] = (HEADER_EVENT_TYPE, str(event_type).encode())
            headers.append(header)
        if replay:
            headers.append((HEADER_REPLAY, b"true"))
        if row.extra_headers:
            headers += _extra_headers(row.extra_headers)
        return headers

    def _check_topic(self, topic: str | None) -> str:
        """A topic's checks, once per run: a row without one, one the service did not register, or a name
        Kafka would refuse (before producing: a broker rejection arrives too late to hold its key)."""
        if not topic:
            raise PoisonRowError("row has no topic and the service has no default topic")
        if self._registered_topics and topic not in self._registered_topics:
            raise PoisonRowError(f"topic {topic!r} is not one of the service's registered topics")
        try:
            check_topic(topic)
        except ValueError as exc:
            raise PoisonRowError(str(exc)) from None
        self._valid_topics.add(topic)
        return topic

    def dead_letter_copy(self, ref: int, row: OutboxRow, error: str, topic: str) -> OutboundMessage:
        """The row as it is (raw body, its own headers if they parse) plus the error that ended it."""
        try:
            headers = self.headers(row, replay=False)
        except PoisonRowError:  # the row's own headers are what is broken: send the relay's only
            headers = self.headers(replace(row, extra_headers=None), replay=False)
        headers.append((HEADER_ERROR, error.encode()[:1000]))
        if row.topic:
            headers.append((HEADER_ORIGINAL_TOPIC, str(row.topic).encode()))
        value = encode_body(row, "raw") if row.body is not None else b""
        key = None if row.key is None else str(row.key).encode()
        return OutboundMessage(ref, topic, key, value, headers)
