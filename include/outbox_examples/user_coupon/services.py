"""The two business services: users (writes EventPublish) and coupons (EventProcess -> coupon).

The coupon service works in two steps, as in the write-up: receiving only records the event as NEW in
EventProcess (deduped on the event id) and commits; the processor then turns NEW rows into coupons and
marks them PROCESSED in one transaction. A crash between the two leaves NEW rows that the processor
handles after restart.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

from outbox_relay.database import insert_once, truncate_error
from outbox_relay.ids import uuid7

log = logging.getLogger(__name__)

USER_TOPIC = "user.events"
USER_CREATED = "USER_CREATED"
USER_DEACTIVATED = "USER_DEACTIVATED"
WELCOME_COUPON = Decimal("10.00")


class EventOrderError(ValueError):
    """An event arrived before the event it depends on (per-user order was broken)."""


# --- user service -------------------------------------------------------------------------------


def _publish(conn: Connection, event_type: str, user_id: int, body: dict[str, Any]) -> str:
    event_id = uuid7()
    conn.execute(
        text(
            "INSERT INTO EventPublish (id, status, payload, eventType, aggregateId) "
            "VALUES (:id, 'NEW', :payload, :type, :agg)"
        ),
        {"id": event_id, "payload": json.dumps(body), "type": event_type, "agg": str(user_id)},
    )
    return event_id


def register_user(conn: Connection, username: str) -> int:
    """The user row and its USER_CREATED event in the caller's ONE transaction."""
    user_id = int(
        conn.execute(text("INSERT INTO app_user (username) VALUES (:u)"), {"u": username}).lastrowid
    )
    _publish(conn, USER_CREATED, user_id, {"user_id": user_id, "username": username})
    return user_id


def deactivate_user(conn: Connection, user_id: int) -> None:
    """Deactivation and its USER_DEACTIVATED event in one transaction; the coupon service revokes."""
    changed = conn.execute(
        text("UPDATE app_user SET status = 'DEACTIVATED' WHERE user_id = :u AND status = 'ACTIVE'"),
        {"u": user_id},
    ).rowcount
    if changed != 1:
        raise ValueError(f"user {user_id} does not exist or is already deactivated")
    _publish(conn, USER_DEACTIVATED, user_id, {"user_id": user_id})


def register_users(engine: Engine, count: int, deactivate_every: int = 5, prefix: str = "user") -> list[int]:
    """``count`` registrations, one transaction each; every ``deactivate_every``-th user is then
    deactivated in its own transaction, so that user has two events whose order matters."""
    users = []
    for n in range(count):
        with engine.begin() as conn:
            user_id = register_user(conn, f"{prefix}-{n}")
        if deactivate_every and n % deactivate_every == 0:
            with engine.begin() as conn:
                deactivate_user(conn, user_id)
        users.append(user_id)
    return users


# --- coupon service ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ReceivedEvent:
    event_id: str
    event_type: str
    user_key: str | None
    payload: str


def record_event(conn: Connection, event: ReceivedEvent) -> bool:
    """Record one received event as NEW; False when this event id was recorded before (a redelivery)."""
    return insert_once(
        conn,
        "INSERT INTO EventProcess (id, status, payload, eventType, aggregateId) "
        "VALUES (:id, 'NEW', :payload, :type, :agg)",
        {"id": event.event_id, "payload": event.payload, "type": event.event_type, "agg": event.user_key},
        "PRIMARY",
    )


def _issue_coupon(conn: Connection, user_id: int, event_id: str) -> None:
    issued = insert_once(
        conn,
        "INSERT INTO coupon (user_id, amount, event_id) VALUES (:u, :a, :e)",
        {"u": user_id, "a": WELCOME_COUPON, "e": event_id},
        "uq_coupon_user",
    )
    if not issued:
        log.info("user %s already has a coupon; event %s issues none", user_id, event_id)


def _revoke_coupon(conn: Connection, user_id: int) -> None:
    state = conn.execute(
        text("SELECT status FROM coupon WHERE user_id = :u FOR UPDATE"), {"u": user_id}
    ).scalar_one_or_none()
    if state is None:
        raise EventOrderError(f"USER_DEACTIVATED for user {user_id} before any USER_CREATED")
    conn.execute(text("UPDATE coupon SET status = 'REVOKED' WHERE user_id = :u"), {"u": user_id})


def apply_event(conn: Connection, event_id: str, event_type: str, payload: str) -> None:
    """The coupon business effect of one event (runs inside the processor's transaction)."""
    body = json.loads(payload)
    user_id = int(body["user_id"])
    if event_type == USER_CREATED:
        _issue_coupon(conn, user_id, event_id)
    elif event_type == USER_DEACTIVATED:
        _revoke_coupon(conn, user_id)
    else:
        raise ValueError(f"unknown event type {event_type!r}")


@dataclass
class ProcessStats:
    processed: int = 0
    failed: int = 0


# Errors that belong to the event (bad body, broken order, constraint): the row is marked FAILED with
# its error. Anything else (connection lost, deadlock) rolls the batch back; the rows stay NEW.
PERMANENT_ERRORS = (ValueError, KeyError, TypeError, IntegrityError)


def process_pending(engine: Engine, stats: ProcessStats, batch_size: int = 500) -> None:
    """Turn NEW EventProcess rows into coupons, in event-id (= creation) order, until none are left.

    Plain FOR UPDATE (no SKIP LOCKED): two processors take turns instead of one skipping a user's
    earlier event and applying a later one first.
    """
    while True:
        with engine.begin() as conn:
            rows = conn.execute(
                text(
                    "SELECT id, eventType, payload FROM EventProcess WHERE status = 'NEW' "
                    "ORDER BY id LIMIT :n FOR UPDATE"
                ),
                {"n": batch_size},
            ).all()
            for event_id, event_type, payload in rows:
                _process_row(conn, str(event_id), str(event_type), str(payload), stats)
        if len(rows) < batch_size:
            return


def _process_row(conn: Connection, event_id: str, event_type: str, payload: str, stats: ProcessStats) -> None:
    status, error = "PROCESSED", None
    savepoint = conn.begin_nested()
    try:
        apply_event(conn, event_id, event_type, payload)
        savepoint.commit()
    except PERMANENT_ERRORS as exc:
        savepoint.rollback()
        status, error = "FAILED", truncate_error(f"{type(exc).__name__}: {exc}")
        log.error("coupon service: event %s (%s) FAILED: %s", event_id, event_type, error)
    conn.execute(
        text("UPDATE EventProcess SET status = :s, error = :e, processedAt = NOW(6) WHERE id = :id"),
        {"s": status, "e": error, "id": event_id},
    )
    if status == "PROCESSED":
        stats.processed += 1
    else:
        stats.failed += 1
