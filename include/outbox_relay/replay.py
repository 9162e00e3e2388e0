"""Replay: send FAILED or SENT-but-unconfirmed rows again, on purpose, bounded and on record.

* FAILED rows (and rows given up on that stay NEW when ``statuses.failed`` is null) are **requeued**:
  back to NEW with a fresh attempt budget; their last error and attempt count go to the row history.
  The relay's next run publishes them like any NEW row.
* SENT rows of a service with confirmations are **republished** now, with the ``outbox-replay: true``
  header; their status and ``relay_run_id`` stay as they were, and each republish is a history row.

Per-key order, precisely: rows are handled in primary-key order. A requeued row is published by the
relay under its usual rule (primary-key order; a key's rows wait behind a row of the key that waits
for its retry), so it goes out before every *later* row of its key that is not yet published. Rows of
its key published while it was FAILED stay ahead of it: consumers see the replayed row after them. A
SENT row is not republished (it is reported as held back) while an older row of its key is still
unpublished, so a republish never overtakes a row of its key that consumers have not seen yet.

* Copies on the dead-letter topic are **re-published** to the topic they were meant for
  (:class:`DeadLetterReplayer`).

More rows matching than ``max_rows`` refuses the whole replay: narrow the filter or raise the bound.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError, InfrastructureError
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.kafka.readback import TopicRecord, read_back
from outbox_relay.kafka.records import (
    HEADER_ERROR,
    HEADER_EVENT_TYPE,
    HEADER_MESSAGE_ID,
    HEADER_ORIGINAL_TOPIC,
    HEADER_REPLAY,
    HEADER_ROW_ID,
    OutboundMessage,
)
from outbox_relay.models import (
    DEAD_LETTER,
    FAILED,
    UNCONFIRMED,
    HistoryEntry,
    ReplayCandidate,
    ReplayFilter,
    ReplayJob,
    StatsMixin,
)
from outbox_relay.relay.engine import OutboxRelay, RunKind, RunRequest
from outbox_relay.store.outbox import OutboxStore

__all__ = [
    "DEAD_LETTER",
    "FAILED",
    "UNCONFIRMED",
    "DeadLetterReplayer",
    "HistoryEntry",
    "ReplayFilter",
    "ReplayJob",
    "ReplayReport",
    "Replayer",
]

SHOWN_ROWS = 20  # rows listed in a report (all of them are counted)


class ReplayLockBusyError(InfrastructureError):
    """A relay of the table held its lock for longer than the replay waits."""


@dataclass
class ReplayReport(StatsMixin):
    service: str
    dry_run: bool
    matched: int = 0
    requeued: int = 0
    republished: int = 0
    held_back: int = 0
    rows: list[dict[str, Any]] = field(default_factory=list)  # the first SHOWN_ROWS, with what happens
    # Of every matched row: how many per status (kind) and per topic, and the first and last creation time.
    by_kind: dict[str, int] = field(default_factory=dict)
    by_topic: dict[str, int] = field(default_factory=dict)
    first_created: str | None = None
    last_created: str | None = None

    def tally(self, kinds: list[str], topics: list[str | None], created: list[Any]) -> None:
        """Count the matched rows per kind and topic, and their creation times' span."""
        for kind in kinds:
            self.by_kind[kind] = self.by_kind.get(kind, 0) + 1
        for topic in topics:
            name = topic or "(no topic)"
            self.by_topic[name] = self.by_topic.get(name, 0) + 1
        times = sorted(str(c) for c in created if c is not None)
        self.first_created, self.last_created = (times[0], times[-1]) if times else (None, None)

    def lines(self) -> list[str]:
        verb = "would be" if self.dry_run else "were"
        head = (
            f"service {self.service}: {self.matched} rows match; {self.requeued} {verb} requeued (FAILED -> NEW, "
            f"sent by the relay's next run), {self.republished} {verb} republished, {self.held_back} held back"
        )
        shown = [f"  row {r['row_id']} ({r['message_id']}): {r['kind']} -> {r['outcome']}" for r in self.rows]
        more = self.matched - len(self.rows)
        return [head, *shown, *([f"  ... and {more} more"] if more > 0 else [])]


class Replayer:
    def __init__(self, config: ServiceConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.store = OutboxStore(config)

    def check(self, request: ReplayJob) -> None:
        """Refuse a request this service cannot serve, naming the parameter."""
        c, wanted = self.config, request.wanted
        if not wanted.kinds or not wanted.kinds <= {FAILED, UNCONFIRMED}:
            raise ConfigurationError(f"replay: statuses must be some of {FAILED!r}, {UNCONFIRMED!r}")
        if UNCONFIRMED in wanted.kinds and c.confirmation is None:
            raise ConfigurationError(
                f"service {c.service!r} has no confirmation topic, so its SENT rows are final: "
                "replay 'unconfirmed' needs confirmations (a backfill with republish sends a window again)"
            )
        for name, value in (("key", wanted.key), ("event_type", wanted.event_type)):
            if value is not None and getattr(c.columns, name) is None:
                raise ConfigurationError(f"replay: service {c.service!r} maps no columns.{name} to filter on")
        if (wanted.created_from or wanted.created_until) and c.columns.created_at is None:
            raise ConfigurationError(f"replay: service {c.service!r} maps no columns.created_at for a window")
        if request.max_rows < 1:
            raise ConfigurationError(f"replay: max_rows must be at least 1, not {request.max_rows}")
        if not request.history.reason.strip():
            raise ConfigurationError("replay: a reason is required (it is kept in the row history)")

    def run(self, request: ReplayJob, relay: OutboxRelay | None = None) -> ReplayReport:
        """Requeue and republish what ``request`` selects (nothing when it is a dry run). ``relay``
        publishes the SENT rows; required unless the request is a dry run or selects only FAILED rows."""
        self.check(request)
        report = ReplayReport(self.config.service, request.dry_run)
        with self.engine.connect() as conn:
            if not self.store.lock.acquire(conn, self.config.relay_lock_wait_seconds):
                raise ReplayLockBusyError(
                    f"service {self.config.service}: a relay of {self.config.table} held its lock for more "
                    f"than {self.config.relay_lock_wait_seconds:g}s; retry the replay when that run ends"
                )
            try:
                rows = self.store.replays.candidates(conn, request.wanted, request.max_rows + 1)
                if len(rows) > request.max_rows:
                    conn.rollback()
                    raise ConfigurationError(
                        f"replay of service {self.config.service}: more than max_rows={request.max_rows} "
                        "rows match; narrow the filter (ids, key, event type, window) or raise max_rows"
                    )
                resend, held = self._split(conn, rows)
                requeue = [r for r in rows if r.kind == FAILED]
                if request.dry_run:
                    conn.rollback()
                else:
                    self.store.replays.requeue(conn, requeue, request.history)
                    conn.commit()
            finally:
                self.store.lock.release(conn)
        republished = self._republish(request, resend, relay) if resend and not request.dry_run else 0
        report.matched, report.requeued, report.held_back = len(rows), len(requeue), len(held)
        report.republished = len(resend) if request.dry_run else republished
        report.rows = [self._shown(r, held) for r in rows[:SHOWN_ROWS]]
        report.tally([r.kind for r in rows], [r.topic for r in rows], [r.created_at for r in rows])
        return report

    def _split(self, conn: Any, rows: list[ReplayCandidate]) -> tuple[list[ReplayCandidate], set[Any]]:
        """SENT rows to republish now, and the ids of those held back behind an older unpublished row."""
        sent = [r for r in rows if r.kind == UNCONFIRMED]
        first_unpublished = self.store.replays.older_unpublished(conn, sent)
        if self.store.table.ordered:  # (order_by) ids do not say which row is older: hold the key's rows
            held = {r.row_id for r in sent if r.key in first_unpublished}
        else:
            held = {
                r.row_id for r in sent if r.key in first_unpublished and first_unpublished[r.key] < r.row_id
            }
        return [r for r in sent if r.row_id not in held], held

    def _republish(self, request: ReplayJob, rows: list[ReplayCandidate], relay: OutboxRelay | None) -> int:
        if relay is None:
            raise ConfigurationError("republishing SENT rows needs a relay (a producer)")
        stats = relay.run(
            RunRequest(
                run_id=request.history.run_id,
                republish=True,
                named_rows=tuple(r.row_id for r in rows),
                history=request.history,
                kind=RunKind.REPLAY,
            )
        )
        return stats.republished

    @staticmethod
    def _shown(row: ReplayCandidate, held: set[Any]) -> dict[str, Any]:
        outcome = "held back" if row.row_id in held else ("requeue" if row.kind == FAILED else "republish")
        return {
            "row_id": row.row_id,
            "message_id": row.message_id,
            "kind": row.kind,
            "outcome": outcome,
            "key": row.key,
            "topic": row.topic,
            "last_error": row.last_error,
        }


class DeadLetterReplayer:
    """Publish copies from the service's dead-letter topic to the topic each was meant for, with the
    ``outbox-replay`` header (the error header dropped). For rows retention already deleted, or to send
    exactly what was dead-lettered; the table is not changed (requeue FAILED rows while they exist). The
    time window applies to when a copy was dead-lettered."""

    def __init__(self, config: ServiceConfig, engine: Engine) -> None:
        self.config = config
        self.engine = engine
        self.store = OutboxStore(config)

    def run(self, request: ReplayJob, consumer: Any, publisher: KafkaPublisher | None) -> ReplayReport:
        c, wanted = self.config, request.wanted
        if c.dead_letter_topic is None:
            raise ConfigurationError(f"service {c.service!r} has no dead_letter_topic to replay from")
        if not request.history.reason.strip():
            raise ConfigurationError("replay: a reason is required (it is kept in the row history)")
        since = c.db_epoch_ms(wanted.created_from) if wanted.created_from else 0
        until = c.db_epoch_ms(wanted.created_until) if wanted.created_until else None
        chosen = [r for r in read_back(consumer, [c.dead_letter_topic], since) if _matches(r, wanted, until)]
        if len(chosen) > request.max_rows:
            raise ConfigurationError(
                f"replay of service {c.service}: {len(chosen)} dead-letter copies match, more than "
                f"max_rows={request.max_rows}; narrow the filter or raise max_rows (nothing was published)"
            )
        messages, unroutable = self._messages(chosen)
        report = ReplayReport(c.service, request.dry_run, matched=len(chosen), held_back=len(unroutable))
        report.rows = [_shown_copy(r, r in unroutable) for r in chosen[:SHOWN_ROWS]]
        report.tally(
            [DEAD_LETTER] * len(chosen),
            [r.headers.get(HEADER_ORIGINAL_TOPIC) or c.topic for r in chosen],
            [],  # when each row was created is not on its dead-letter copy
        )
        if request.dry_run or not messages:
            report.republished = len(messages) if request.dry_run else 0
            return report
        if publisher is None:
            raise ConfigurationError("replaying dead letters needs a publisher")
        outcome = publisher.publish(messages)
        acked = [chosen[m.ref] for m in outcome.acked]
        with self.engine.begin() as conn:
            self.store.history.record_dead_letters(
                conn,
                [
                    (
                        r.headers.get(HEADER_ROW_ID, ""),
                        r.headers.get(HEADER_MESSAGE_ID, ""),
                        r.headers.get(HEADER_ERROR),
                    )
                    for r in acked
                ],
                request.history,
            )
        report.republished = len(acked)
        lost = [*outcome.rejected, *outcome.unavailable]
        if lost or outcome.held:
            raise InfrastructureError(
                f"service {c.service}: {len(acked)} dead-letter copies replayed and recorded, "
                f"{len(messages) - len(acked)} not acknowledged ({lost[0][1] if lost else 'held back'}); "
                "run the replay again for those"
            )
        return report

    def _messages(self, chosen: list[TopicRecord]) -> tuple[list[OutboundMessage], list[TopicRecord]]:
        messages, unroutable = [], []
        for ref, record in enumerate(chosen):
            target = record.headers.get(HEADER_ORIGINAL_TOPIC) or self.config.topic
            if not target:
                unroutable.append(record)  # an old copy without the header, of a service with many topics
                continue
            headers = [(k, v.encode()) for k, v in record.headers.items() if k not in _DROPPED_HEADERS]
            headers.append((HEADER_REPLAY, b"true"))
            messages.append(OutboundMessage(ref, target, record.key, record.value or b"", headers))
        return messages, unroutable


_DROPPED_HEADERS = {HEADER_ERROR, HEADER_ORIGINAL_TOPIC, HEADER_REPLAY}


def _matches(record: TopicRecord, wanted: ReplayFilter, until_ms: int | None) -> bool:
    h = record.headers
    checks = [
        not wanted.row_ids or h.get(HEADER_ROW_ID) in wanted.row_ids,
        not wanted.message_ids or h.get(HEADER_MESSAGE_ID) in wanted.message_ids,
        wanted.key is None or (record.key or b"").decode("utf-8", "replace") == wanted.key,
        wanted.event_type is None or h.get(HEADER_EVENT_TYPE) == wanted.event_type,
        until_ms is None or (record.timestamp_ms or 0) < until_ms,
    ]
    return all(checks)


def _shown_copy(record: TopicRecord, unroutable: bool) -> dict[str, Any]:
    return {
        "row_id": record.headers.get(HEADER_ROW_ID),
        "message_id": record.headers.get(HEADER_MESSAGE_ID),
        "kind": DEAD_LETTER,
        "outcome": "no original topic" if unroutable else "republish",
        "key": None if record.key is None else record.key.decode("utf-8", "replace"),
        "topic": record.headers.get(HEADER_ORIGINAL_TOPIC),
        "last_error": record.headers.get(HEADER_ERROR),
    }
