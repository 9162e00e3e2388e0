"""Writing outbox messages from a service, in the transaction that writes its business rows.

Every service used to hand-write the outbox INSERT (and pick its own message ids). ``write_outbox``
checks each message the way the relay will (topic name, JSON body, headers, column sizes) before
anything is written, so a bad message fails the caller's transaction with a message naming it, instead
of reaching the table and ending FAILED later; and it gives messages time-ordered ids (UUIDv7).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from outbox_relay.config.fields import check_topic
from outbox_relay.errors import OutboxRelayError
from outbox_relay.ids import uuid7
from outbox_relay.relay.messages import check_json
from outbox_relay.store.writer import insert_outbox_rows

# Column sizes of the standard table (outbox_relay/store/sql/01_outbox_message.sql).
MAX_KEY_CHARS = 191
MAX_EVENT_TYPE_CHARS = 191
MAX_MESSAGE_ID_CHARS = 36


class OutboxWriteError(OutboxRelayError, ValueError):
    """A message cannot be written; nothing of the call was written."""


@dataclass(frozen=True)
class OutboxMessage:
    """One message for the standard outbox table.

    ``payload`` is any JSON-serialisable value, or ``str``/``bytes`` already holding JSON. ``key`` is the
    Kafka key (per-key order); ``headers`` become extra Kafka headers. ``message_id`` defaults to a new
    UUIDv7 (consumers dedupe by it). ``not_before`` delays the message: a ``timedelta`` from the database
    clock at insert time, or a timezone-aware ``datetime``; later messages of the same key wait behind it."""

    topic: str
    key: str
    event_type: str
    payload: Any
    headers: Mapping[str, str] = field(default_factory=dict)
    message_id: str | None = None
    not_before: timedelta | datetime | None = None


def write_outbox(
    target: Any, messages: OutboxMessage | Sequence[OutboxMessage], table: str = "outbox_message"
) -> list[str]:
    """Insert ``messages`` into ``table`` on ``target`` (a SQLAlchemy ``Connection`` or ``Session``, or a
    DB-API connection such as PyMySQL's) without committing: the caller's transaction decides. Returns
    the message ids, in order. Every message is checked first; one bad message writes nothing and raises
    ``OutboxWriteError`` naming it."""
    batch = [messages] if isinstance(messages, OutboxMessage) else list(messages)
    rows = [_row(m, n, len(batch)) for n, m in enumerate(batch, start=1)]
    if rows:
        insert_outbox_rows(target, table, rows)
    return [str(r["message_id"]) for r in rows]


def _row(message: OutboxMessage, n: int, total: int) -> dict[str, Any]:
    where = f"outbox message {n} of {total} (topic {message.topic!r}, key {message.key!r})"

    def refuse(problem: str) -> OutboxWriteError:
        return OutboxWriteError(f"{where}: {problem}; nothing was written")

    try:
        check_topic(message.topic)
    except ValueError as exc:
        raise refuse(str(exc)) from None
    for name, value, limit in (
        ("key", message.key, MAX_KEY_CHARS),
        ("event_type", message.event_type, MAX_EVENT_TYPE_CHARS),
        ("message_id", message.message_id or "", MAX_MESSAGE_ID_CHARS),
    ):
        if not isinstance(value, str):
            raise refuse(f"{name} must be a string, not {type(value).__name__}")
        if len(value) > limit:
            raise refuse(f"{name} has {len(value)} characters; the column holds {limit}")
    if not message.key or not message.event_type:
        raise refuse("key and event_type must not be empty")
    return {
        "message_id": message.message_id or uuid7(),
        "aggregate_id": message.key,
        "event_type": message.event_type,
        "topic": message.topic,
        "payload": _payload(message.payload, refuse),
        "headers": _headers(message.headers, refuse),
        **_not_before(message.not_before, refuse),
    }


Refusal = Callable[[str], OutboxWriteError]


def _payload(payload: Any, refuse: Refusal) -> str:
    """The body as JSON text, checked as strictly as the relay checks it (no NaN, valid UTF-8)."""
    if isinstance(payload, (str, bytes)):
        data = payload.encode() if isinstance(payload, str) else payload
        try:
            check_json(data)
        except ValueError as exc:
            raise refuse(str(exc)) from None
        return data.decode()
    try:
        return json.dumps(payload, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise refuse(f"payload cannot be written as JSON ({exc})") from None


def _not_before(value: timedelta | datetime | None, refuse: Refusal) -> dict[str, Any]:
    """The delay in microseconds, or the instant in UTC; an instant without a time zone is refused (the
    database, the writer and the relay may each assume a different one)."""
    if value is None:
        return {}
    if isinstance(value, timedelta):
        if value < timedelta(0):
            raise refuse(f"not_before is a negative delay ({value}); give a timedelta of 0 or more")
        return {"delay_us": value // timedelta(microseconds=1)}
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise refuse(
                f"not_before {value.isoformat()} has no time zone; give an aware datetime "
                "(e.g. datetime.now(timezone.utc) + timedelta(minutes=5)) or a timedelta"
            )
        return {"not_before_utc": value.astimezone(timezone.utc).replace(tzinfo=None)}
    raise refuse(f"not_before must be a timedelta or an aware datetime, not {type(value).__name__}")


def _headers(headers: Mapping[str, str], refuse: Refusal) -> str | None:
    if not isinstance(headers, Mapping):
        raise refuse(f"headers must be a mapping of names to strings, not {type(headers).__name__}")
    for name, value in headers.items():
        if not isinstance(name, str) or not name or not isinstance(value, str):
            raise refuse(
                f"header {name!r}: names must be non-empty strings and values strings, got {value!r}"
            )
    return json.dumps(dict(headers), ensure_ascii=False) if headers else None
