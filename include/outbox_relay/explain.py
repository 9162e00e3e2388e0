"""``explain``: where one row stands and why, in the words an on-call engineer needs ("waiting behind row
X of key K until T", "out of attempts", "confirmed at T"), read from the table and the database clock."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import ProgrammingError

from outbox_relay.config import ServiceConfig
from outbox_relay.models import RowSnapshot, StatsMixin
from outbox_relay.store.outbox import OutboxStore


@dataclass
class Explanation(StatsMixin):
    service: str
    row_id: Any
    message_id: str
    state: str  # new | scheduled | waiting_for_retry | held_back | too_young | given_up | sent | confirmed | failed
    why: str
    facts: dict[str, Any] = field(default_factory=dict)

    def lines(self) -> list[str]:
        head = f"service {self.service} row {self.row_id} (message {self.message_id}): {self.state}"
        lines = [head, f"  why: {self.why}"]
        for name, value in self.facts.items():
            if isinstance(value, list):
                lines += [f"  {name}:", *(f"    - {item}" for item in value)]
            elif value is not None:
                lines.append(f"  {name}: {value}")
        return lines


class Explainer:
    def __init__(self, config: ServiceConfig, store: OutboxStore | None = None) -> None:
        self.config = config
        self.store = store or OutboxStore(config)
        self.queries = self.store.explain
        self.history = self.store.history

    def explain(self, conn: Connection, reference: str) -> Explanation | None:
        row = self.queries.find(conn, reference)
        if row is None:
            return None
        state, why = self._state(conn, row)
        facts = {
            "status": row.status,
            "attempts": f"{row.attempts} of {self.config.retry.max_attempts}",
            "last error": row.last_error,
            "next attempt at": row.next_attempt_at if self._retries(row) else None,
            "not before": row.not_before,
            **{
                name: row.fields.get(name)
                for name in ("key", "topic", "created_at", "sent_at", "confirmed_at")
            },
            "relay run": row.fields.get("run_id"),
            "history": self._history(conn, row.row_id),
            "database clock": row.now,
        }
        return Explanation(self.config.service, row.row_id, row.message_id, state, why, facts)

    def _retries(self, row: RowSnapshot) -> bool:
        """A next attempt applies to a NEW row that failed before and was not given up on."""
        return row.status == self.config.statuses.new and row.attempts > 0 and not row.given_up

    def _history(self, conn: Connection, row_id: Any) -> list[str] | str | None:
        """Every run that touched the row besides the one that sent it, oldest first: failed attempts,
        replays, backfill republishes (None when there was none)."""
        try:
            entries = self.history.of_row(conn, row_id)
        except ProgrammingError as exc:  # no history table yet: say so instead of failing the explanation
            conn.rollback()
            create = f"outbox-relay ddl --service {self.config.service} --shared-only --apply"
            return f"unknown: {exc.orig}; create it: {create}"
        lines = []
        for e in entries:
            if e.action in {"attempt", "gave_up"}:
                lines.append(f"{e.at} {e.action} in run {e.run_id} ({e.reason}): {e.previous_error!r}")
                continue
            before = f"status {e.previous_status}" + (
                f", error {e.previous_error!r}" if e.previous_error else ""
            )
            lines.append(
                f"{e.at} {e.action} by {e.requested_by} in run {e.run_id} ({e.reason}); before: {before}"
            )
        return lines or None

    def _state(self, conn: Connection, row: RowSnapshot) -> tuple[str, str]:
        st = self.config.statuses
        if row.status == st.sent:
            return self._sent(row)
        if st.confirmed is not None and row.status == st.confirmed:
            return (
                "confirmed",
                f"the consumer confirmed it at {row.fields.get('confirmed_at') or '(time not mapped)'}",
            )
        if st.failed is not None and row.status == st.failed:
            return "failed", self._failed(row)
        if row.status != st.new:
            return "unknown", f"status {row.status!r} is none of the service's statuses {st.model_dump()}"
        return self._new(conn, row)

    def _sent(self, row: RowSnapshot) -> tuple[str, str]:
        run = row.fields.get("run_id")
        by = f" by relay run {run}" if run else ""
        when = f" at {row.fields['sent_at']}" if row.fields.get("sent_at") else ""
        if self.config.confirmation is None:
            return "sent", f"Kafka acknowledged it{when}{by}; SENT is final (no confirmation topic)"
        topic = self.config.confirmation.topic
        return "sent", f"Kafka acknowledged it{when}{by}; waiting for the consumer's answer on {topic}"

    def _failed(self, row: RowSnapshot) -> str:
        error = row.last_error or "no error recorded"
        if row.attempts >= self.config.retry.max_attempts:
            dlq = self.config.dead_letter_topic
            copied = f"; a copy was acknowledged on {dlq} before it was marked FAILED" if dlq else ""
            return f"out of attempts ({row.attempts}): {error}{copied}"
        if row.fields.get("confirmed_at") or self.config.confirmation is not None:
            return f"the consumer answered FAILED, or the relay gave up on it: {error}"
        return f"the relay gave up on it: {error}"

    def _new(self, conn: Connection, row: RowSnapshot) -> tuple[str, str]:
        if row.given_up:
            return "given_up", (
                f"out of attempts ({row.attempts}): {row.last_error}; statuses.failed is null, so it stays NEW "
                "and is marked failed in outbox_relay_attempt (set failed = 0 there to queue it again)"
            )
        if row.scheduled:
            return "scheduled", f"its writer scheduled it: not sent before {row.not_before}"
        if row.next_attempt_at is not None and row.next_attempt_at > row.now:
            return "waiting_for_retry", (
                f"attempt {row.attempts} failed ({row.last_error}); next attempt not before {row.next_attempt_at}"
            )
        ahead = self.queries.waiting_ahead(conn, row)
        if ahead is not None:
            until = (
                f"which is scheduled not before {ahead.not_before}"
                if ahead.scheduled
                else f"which retries not before {ahead.next_attempt_at}"
            )
            return "held_back", (
                f"waiting behind row {ahead.row_id} (message {ahead.message_id}) of key {row.fields.get('key')!r}, "
                f"{until}: per-key order"
            )
        created, threshold = row.fields.get("created_at"), self.config.threshold_seconds
        if created is not None and threshold > 0 and created + timedelta(seconds=threshold) > row.now:
            eligible = created + timedelta(seconds=threshold)
            return "too_young", f"younger than threshold_seconds ({threshold:g}); eligible from {eligible}"
        return "new", "eligible: the next relay run publishes it"


def not_found(config: ServiceConfig, reference: str) -> str:
    """What to tell someone asking about a row the table does not hold: where acknowledged rows go."""
    where = {
        "delete": "completion: delete removes each row once the broker acknowledged it",
        "archive": f"completion: archive moves each row to {config.archive_table} once the broker acknowledged it",
    }.get(config.completion)
    if where is None and config.retention is not None:
        where = f"retention deletes finished rows after {config.retention.days} days"
    hint = f" ({where}; the topic keeps the message)" if where else ""
    return f"service {config.service}: no row of {config.table} has message id or id {reference!r}{hint}"
