"""The relay loop: claim a batch, publish it, record what the broker acknowledged, repeat.

Each batch is one database transaction holding row locks (``FOR UPDATE SKIP
LOCKED`` under READ COMMITTED). A crash drops the connection and with it the
locks, so no claim can be left stuck; rows the broker acknowledged but that were
not yet marked SENT are simply published again (at-least-once; consumers dedupe).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError

from outbox_relay.config import ServiceConfig, check_topic
from outbox_relay.models import Failure, OutboxRow, RunStats, Window
from outbox_relay.publisher import (
    HEADER_ERROR,
    BrokerUnavailableError,
    DeliveryOutcome,
    KafkaPublisher,
    OutboundMessage,
    build_headers,
)
from outbox_relay.repository import OutboxRepository, encode_body

log = logging.getLogger(__name__)

_DRAINED = object()  # returned by a batch that found nothing left


@dataclass(frozen=True)
class RunRequest:
    """What one run should do; built from the Airflow context or the CLI."""

    run_id: str
    window: Window | None = None
    republish: bool = False
    time_budget_seconds: float | None = None
    poll_interval_seconds: float | None = None


class RelayLockBusyError(RuntimeError):
    """A backfill run could not get its turn on the table in time."""


class RelayDatabaseError(RuntimeError):
    """The database failed mid-run (connection killed, server gone): the unfinished batch rolled back."""


class OutboxRelay:
    """Relays one service's outbox table; one instance per run."""

    def __init__(
        self,
        config: ServiceConfig,
        engine: Engine,
        publisher: KafkaPublisher,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.engine = engine
        self.publisher = publisher
        self.repo = OutboxRepository(config)
        self.clock = clock
        self.sleep = sleep

    def backoff_seconds(self, attempts_before: int) -> float:
        retry = self.config.retry
        return float(min(retry.backoff_seconds * (2**attempts_before), retry.max_backoff_seconds))

    def run(self, request: RunRequest) -> RunStats:
        """Drain eligible rows until none are left or the time budget is spent."""
        stats = RunStats()
        started = self.clock()
        budget = request.time_budget_seconds or self.config.time_budget_seconds
        with self.engine.connect() as conn:
            if not self.repo.acquire_relay_lock(conn, self.config.relay_lock_wait_seconds):
                return self._lock_busy(request, stats)
            try:
                self._drain(conn, request, stats, started, budget)
            except DBAPIError as exc:
                raise RelayDatabaseError(
                    f"service {self.config.service}: database error while relaying {self.config.table} "
                    f"({exc.orig}); the unfinished batch's transaction rolled back (unless its COMMIT reached "
                    "the server first), so its rows stay NEW and the next run re-publishes them "
                    f"(at-least-once). Stats so far: {stats.as_dict()}"
                ) from exc
            finally:
                self.repo.release_relay_lock(conn)
        stats.elapsed_seconds = round(self.clock() - started, 3)
        log.info("service %s relay run %s: %s", self.config.service, request.run_id, stats.as_dict())
        return stats

    def _drain(
        self, conn: Connection, request: RunRequest, stats: RunStats, started: float, budget: float
    ) -> None:
        """Claim batches until the table is drained; in polling mode keep looking until the budget is spent."""
        poll = request.poll_interval_seconds or self.config.poll_interval_seconds
        while True:
            held_keys = self.repo.waiting_keys(conn)
            cursor: Any = self.repo.cursor_start(conn)
            conn.commit()
            while True:
                if self.clock() - started >= budget:
                    stats.stopped_because = "time budget spent"
                    return
                last = self._one_batch(conn, cursor, request, held_keys, stats)
                if last is _DRAINED:
                    break
                cursor = last
            if not poll or self.clock() - started + poll >= budget:
                return
            stats.polls += 1
            self.sleep(poll)

    def _lock_busy(self, request: RunRequest, stats: RunStats) -> RunStats:
        """Another relay of this table holds the lock: a scheduled run has nothing to add, a backfill must retry."""
        message = (
            f"service {self.config.service}: another relay of {self.config.table} held the relay lock for "
            f"{self.config.relay_lock_wait_seconds:g}s"
        )
        if request.window is not None:
            raise RelayLockBusyError(f"{message}; the backfill run fails so that Airflow retries it")
        log.info("%s; this run has nothing to do", message)
        stats.stopped_because = "another relay of this table is running"
        return stats

    def _one_batch(
        self, conn: Connection, cursor: Any, request: RunRequest, held_keys: set[Any], stats: RunStats
    ) -> Any:
        """Process one batch in one transaction; returns the last row id seen, or ``_DRAINED``."""
        with conn.begin():
            rows = self.repo.claim(conn, cursor, self.config.batch_size, request.window, request.republish)
            if not rows:
                return _DRAINED
            stats.batches += 1
            stats.claimed += len(rows)
            sendable, failures = self._prepare(rows, held_keys, stats, request.republish)
            outcome = self.publisher.publish(sendable)
            failures += self._failures_from(outcome, held_keys)
            failures = self._dead_letter(failures, stats)
            self.repo.mark_sent(conn, [m.row for m in outcome.acked], request.run_id)
            self.repo.record_failures(conn, failures)
            self._count(outcome, failures, stats)
        self._log_failures(failures)
        if outcome.unavailable:
            _message, reason = outcome.unavailable[0]
            raise BrokerUnavailableError(
                f"service {self.config.service}: Kafka did not acknowledge {len(outcome.unavailable)} of "
                f"{len(sendable)} messages within {self.publisher.flush_timeout_seconds:g}s ({reason}). "
                f"Is the broker reachable? {len(outcome.acked)} acknowledged rows were marked SENT; "
                "the rest stay NEW and are retried by the next run."
            )
        return rows[-1].row_id

    def _prepare(
        self, rows: list[OutboxRow], held_keys: set[Any], stats: RunStats, republish: bool
    ) -> tuple[list[OutboundMessage], list[Failure]]:
        """Turn rows into messages; poison rows fail now, rows behind a waiting row of their key wait."""
        messages: list[OutboundMessage] = []
        failures: list[Failure] = []
        for row in rows:
            if row.failed:
                continue  # gave up earlier (state kept in the attempt table); not a blocker any more
            if row.waiting or (row.key is not None and row.key in held_keys):
                if row.key is not None:
                    held_keys.add(row.key)
                stats.held_back += 1
                continue
            try:
                messages.append(
                    self._message(row, replay=republish and row.status == self.config.statuses.sent)
                )
            except ValueError as exc:
                failures.append(self._failure(row, str(exc), held_keys))
        return messages, failures

    def _message(self, row: OutboxRow, replay: bool) -> OutboundMessage:
        if self.config.columns.key is not None and row.key is None:
            raise ValueError(f"key column {self.config.columns.key!r} is NULL")
        if not row.topic:
            raise ValueError("row has no topic and the service has no default topic")
        if self.config.topics and row.topic not in self.config.all_topics:
            raise ValueError(f"topic {row.topic!r} is not one of the service's registered topics")
        check_topic(row.topic)  # before producing: a broker rejection arrives too late to hold its key
        key = None if row.key is None else str(row.key).encode()
        headers = build_headers(row, self.config.service, self.config.table, replay)
        return OutboundMessage(row, row.topic, key, encode_body(row, self.config.payload.format), headers)

    def _failure(self, row: OutboxRow, error: str, held_keys: set[Any]) -> Failure:
        terminal = row.attempts + 1 >= self.config.retry.max_attempts
        if not terminal and row.key is not None:
            held_keys.add(row.key)  # newer rows of this key wait for the retry
        return Failure(row, error, terminal, self.backoff_seconds(row.attempts))

    def _failures_from(self, outcome: DeliveryOutcome, held_keys: set[Any]) -> list[Failure]:
        failures = [self._failure(m.row, error, held_keys) for m, error in outcome.rejected]
        for message in outcome.held:
            if message.row.key is not None:
                held_keys.add(message.row.key)
        for message, _reason in outcome.unavailable:
            if message.row.key is not None:
                held_keys.add(message.row.key)
        return failures

    def _dead_letter(self, failures: list[Failure], stats: RunStats) -> list[Failure]:
        """Copy rows that ran out of attempts to the dead-letter topic; only acked copies become FAILED."""
        topic = self.config.dead_letter_topic
        terminal = [f for f in failures if f.terminal]
        if topic is None or not terminal:
            return failures
        copies = []
        for f in terminal:
            try:
                headers = build_headers(f.row, self.config.service, self.config.table, replay=False)
            except ValueError:  # the row's own headers are what is broken: send the relay's only
                headers = build_headers(
                    replace(f.row, extra_headers=None), self.config.service, self.config.table, False
                )
            headers.append((HEADER_ERROR, f.error.encode()[:1000]))
            value = encode_body(f.row, "raw") if f.row.body is not None else b""
            key = None if f.row.key is None else str(f.row.key).encode()
            copies.append(OutboundMessage(f.row, topic, key, value, headers))
        outcome = self.publisher.publish(copies)
        acked = {id(m.row) for m in outcome.acked}
        rejected = {id(m.row): reason for m, reason in outcome.rejected}
        stats.dead_lettered += len(acked)
        kept = [f for f in failures if not f.terminal or id(f.row) in acked]
        for f in terminal:
            if id(f.row) in rejected:  # the copy can never land (e.g. too large): FAILED, with both errors
                kept.append(replace(f, error=f"{f.error}; dead-letter copy rejected: {rejected[id(f.row)]}"))
            elif id(f.row) not in acked:  # broker trouble: keep the row retryable rather than lose the copy
                kept.append(replace(f, error=f"{f.error}; dead-letter copy not acknowledged", terminal=False))
        return kept

    def _log_failures(self, failures: list[Failure]) -> None:
        """Operators see every row given up on (and every retry) in the task log, with its error."""
        for f in failures:
            level = logging.WARNING if f.terminal else logging.INFO
            what = "FAILED (out of attempts)" if f.terminal else f"will retry in {f.delay_seconds:g}s"
            log.log(level, "service %s row %s (message %s) %s: %s",
                    self.config.service, f.row.row_id, f.row.message_id, what, f.error)  # fmt: skip

    def _count(self, outcome: DeliveryOutcome, failures: list[Failure], stats: RunStats) -> None:
        replayed = sum(1 for m in outcome.acked if m.row.status == self.config.statuses.sent)
        stats.published += len(outcome.acked) - replayed
        stats.republished += replayed
        stats.failed += sum(1 for f in failures if f.terminal)
        stats.retried += sum(1 for f in failures if not f.terminal)
        stats.held_back += len(outcome.held)
