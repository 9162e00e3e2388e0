"""The relay loop: claim a batch, publish it, record what the broker acknowledged, repeat.

A serial run's batch is one database transaction holding row locks (``FOR UPDATE
SKIP LOCKED`` under READ COMMITTED); a pipelined run reads without row locks under
the relay lock. A crash drops the connection and with it every lock, so no claim
can be left stuck; rows the broker acknowledged but that were not yet marked SENT
are simply published again (at-least-once; consumers dedupe).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import InfrastructureError, PoisonRowError
from outbox_relay.kafka.publisher import BrokerUnavailableError, DeliveryOutcome, KafkaPublisher
from outbox_relay.kafka.records import OutboundMessage
from outbox_relay.models import Failure, OutboxRow, RunStats
from outbox_relay.relay.collections_pace import fewer_collections
from outbox_relay.relay.exactly_once import ExactlyOnce, ExactlyOnceClients, check_clients
from outbox_relay.relay.failures import FailurePolicy, after_dead_letter
from outbox_relay.relay.messages import MessageBuilder
from outbox_relay.relay.run_request import RunKind, RunRequest, RunRequestError
from outbox_relay.relay.run_state import RunState
from outbox_relay.store.locks import RelayLock
from outbox_relay.store.outbox import OutboxStore

__all__ = [
    "BACKFILL_RUNNING",
    "BUDGET_SPENT",
    "LOCK_BUSY",
    "OutboxRelay",
    "RelayDatabaseError",
    "RelayLockBusyError",
    "RunKind",
    "RunRequest",
    "RunRequestError",
]

log = logging.getLogger(__name__)

LOCK_BUSY = "another relay of this table is running"
BACKFILL_RUNNING = "a backfill of this table is running"
BUDGET_SPENT = "time budget spent"
LINGER_POLL_SECONDS = 0.1  # how often a lingering run looks for new rows without poll_interval_seconds


def _abandon(conn: Connection) -> None:
    """Roll back after an error; a connection that is itself broken is discarded."""
    try:
        conn.rollback()
    except SQLAlchemyError:
        conn.invalidate()


class RelayLockBusyError(InfrastructureError):
    """A backfill run could not get its turn on the table in time."""


@dataclass
class _Batch:
    """A claimed batch and the connection its outcome is recorded on."""

    conn: Connection
    rows: list[OutboxRow]
    outcome: DeliveryOutcome = field(default_factory=DeliveryOutcome)
    failures: list[Failure] = field(default_factory=list)
    sendable: int = 0
    seq: int | None = None  # exactly once: the batch's Kafka transaction (its progress record's number)


class RelayDatabaseError(InfrastructureError):
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
        exactly_once: ExactlyOnceClients | None = None,
    ) -> None:
        check_clients(config, exactly_once)
        self.config = config
        self.engine = engine
        self.publisher = publisher
        self.store = OutboxStore(config)
        self.messages = MessageBuilder(config)
        self.policy = FailurePolicy(config.retry)
        self.clock = clock
        self.sleep = sleep
        self.exactly_once_clients = exactly_once
        self.exactly_once: ExactlyOnce | None = None  # this run's, once it holds the relay lock

    def run(self, request: RunRequest) -> RunStats:
        """Drain eligible rows until none are left or the time budget is spent."""
        stats = RunStats()
        started = self.clock()
        budget = request.time_budget_seconds or self.config.time_budget_seconds
        lock = self.store.lock_for(request.shard)
        stats.shard = request.shard
        with self.engine.connect() as conn, fewer_collections(self.config.batch_size):
            if not lock.acquire(conn, self.config.relay_lock_wait_seconds):
                return self._lock_busy(conn, request, stats, lock)
            self.store.busy_runs(request.shard).clear(conn)
            try:
                if self.exactly_once_clients is not None:
                    self.exactly_once = ExactlyOnce(
                        self.config, self.store, self.messages, self.exactly_once_clients
                    )
                    stats.recovered = self.exactly_once.begin(conn, request.shard)
                    stats.start_seconds = round(self.clock() - started, 3)
                self._drain(conn, RunState(request, stats, started, budget))
            except DBAPIError as exc:
                then = (
                    "the next run marks them SENT from the batch's committed progress record (exactly once)"
                    if self.exactly_once is not None
                    else "the next run re-publishes them (at-least-once)"
                )
                raise RelayDatabaseError(
                    f"service {self.config.service}: database error while relaying {self.config.table} "
                    f"({exc.orig}); the unfinished batch's transaction rolled back (unless its COMMIT reached "
                    f"the server first), so its rows stay NEW and {then}. Stats so far: {stats.as_dict()}"
                ) from exc
            finally:
                lock.release(conn)
        stats.elapsed_seconds = round(self.clock() - started, 3)
        if self.exactly_once_clients is not None:
            stats.commit_seconds = round(self.exactly_once_clients.publisher.commit_seconds, 3)
        stats.publish_seconds = round(stats.publish_seconds, 3)
        stats.slowest_publish_seconds = round(stats.slowest_publish_seconds, 3)
        log.info("service %s relay run %s: %s", self.config.service, request.run_id, stats.as_dict())
        return stats

    def _drain(self, lock_conn: Connection, run: RunState) -> None:
        """Pass over the table until drained; in polling mode keep looking until the budget is spent, and
        with a linger until no row came for ``linger_seconds``."""
        poll = run.request.poll_interval_seconds or self.config.poll_interval_seconds
        run.interval, run.polling = poll or LINGER_POLL_SECONDS, bool(poll)
        run.linger = self.config.linger_seconds
        while True:
            held_keys = self._held_keys(lock_conn, run.request)
            cursor: Any = run.request.start_after
            if cursor is None:
                cursor = self.store.cursor_start(lock_conn)
            lock_conn.commit()
            if self.config.pipelining:
                self._pass_pipelined(run, cursor, held_keys)
            else:
                self._pass_serial(lock_conn, run, cursor, held_keys)
            if run.stats.stopped_because != "drained":
                return
            if not run.looks_again(self.clock()):
                return
            run.stats.polls += 1
            self.sleep(run.interval)

    def _held_keys(self, conn: Connection, request: RunRequest) -> set[Any]:
        """Keys whose rows must wait: a row of the key waits for its retry, or (for a window) a row of the
        key created before the window is still unpublished, which the window's rows must not overtake."""
        held = self.store.waiting_keys(conn)
        if request.kind is RunKind.BACKFILL:
            assert request.window is not None, "validated by RunRequest"
            held |= self.store.backfills.keys_pending_before(conn, request.window.start)
        return held

    def _pass_serial(self, conn: Connection, run: RunState, cursor: Any, held_keys: set[Any]) -> None:
        """One batch at a time on one connection: at most one batch is acked but not yet marked SENT."""
        while self._has_budget(run):
            batch = self._claim(conn, cursor, run.request)
            if batch is None:
                return
            self._publish(batch, run, held_keys)
            self._settle(batch, run.request)
            self._raise_if_unavailable(batch)
            cursor = self._advance(run, batch)

    def _pass_pipelined(self, run: RunState, cursor: Any, held_keys: set[Any]) -> None:
        """Claim batch n+1 and mark batch n-1 SENT (each on its own connection, in worker threads) while
        batch n is produced. Publishing stays strictly in batch order, so per-key order is unchanged.

        Claims read without row locks and commit at once: the relay lock already keeps other relays of the
        table away, and a claim that held its locks would block the SENT update of the batch before it
        (InnoDB locks neighbouring ``(status, id)`` index entries), which waits for it in turn. A row that
        another session holds locked is therefore published, and its SENT update waits for that lock.
        """
        claim_conn, settle_conn = self.engine.connect(), self.engine.connect()
        claiming: Future[_Batch | None] | None = None
        settling: Future[None] | None = None
        try:
            with ThreadPoolExecutor(max_workers=2, thread_name_prefix="outbox-relay-db") as workers:
                claiming = workers.submit(self._claim, claim_conn, cursor, run.request, settle_conn)
                while claiming is not None:
                    batch = claiming.result()
                    claiming = None
                    if batch is None:
                        break
                    after = self._advance(run, batch)
                    if self._has_budget(run):
                        claiming = workers.submit(self._claim, claim_conn, after, run.request, settle_conn)
                    self._publish(batch, run, held_keys)
                    if settling is not None:
                        settling.result()  # a failed SENT update fails the run here
                    settling = workers.submit(self._settle, batch, run.request)
                    if batch.outcome.unavailable:
                        settling.result()
                        self._raise_if_unavailable(batch)
                if settling is not None:
                    settling.result()  # the last batch's SENT update must have committed
                    settling = None
        finally:
            self._finish_pipeline(claiming, settling, [claim_conn, settle_conn])

    @staticmethod
    def _advance(run: RunState, batch: _Batch) -> Any:
        """The cursor after a batch: its last row's place in claim order (its primary key, or its
        ``order_by`` values)."""
        last = batch.rows[-1]
        run.stats.last_row_id = last.row_id
        run.stats.last_position = last.row_id if last.position is None else last.position
        return run.stats.last_position

    @staticmethod
    def _finish_pipeline(
        claiming: Future[_Batch | None] | None,
        settling: Future[None] | None,
        connections: list[Connection],
    ) -> None:
        """Let in-flight work end before the connections close (the run's own error is the one reported)."""
        for future in (settling, claiming):
            if future is not None:
                with suppress(Exception):
                    future.result()
        for conn in connections:
            with suppress(SQLAlchemyError):
                conn.close()

    def _has_budget(self, run: RunState) -> bool:
        limit = run.request.max_batches
        if run.budget_left(self.clock()) > 0 and (limit is None or run.stats.batches < limit):
            return True
        run.stats.stopped_because = BUDGET_SPENT
        return False

    def _lock_busy(self, conn: Connection, request: RunRequest, stats: RunStats, lock: RelayLock) -> RunStats:
        """Another relay of this table holds the lock: a scheduled run has nothing to add (such runs are
        counted in the database; the caller fails after several in a row), a backfill must retry."""
        stats.lock_holder_connection_id = lock.holder(conn)
        holder = stats.lock_holder_connection_id
        message = (
            f"service {self.config.service}: another relay of {self.config.table} held the relay lock for "
            f"{self.config.relay_lock_wait_seconds:g}s (holder: MySQL connection id {holder})"
        )
        if request.kind is not RunKind.RELAY:
            raise RelayLockBusyError(f"{message}; a backfill or replay run fails so that it can be retried")
        backfill = self.store.backfill_lock.holder(conn)
        if backfill is not None:
            log.info(
                "%s: %s (MySQL connection id %s); this run has nothing to do",
                message,
                BACKFILL_RUNNING,
                backfill,
            )
            stats.stopped_because = BACKFILL_RUNNING
            self.store.busy_runs(request.shard).clear(conn)  # a backfill takes its turns: nothing is wedged
            return stats
        stats.lock_busy_runs = self.store.busy_runs(request.shard).count(conn, holder)
        log.warning(
            "%s; this run has nothing to do (runs in a row that found it held: %s)",
            message,
            stats.lock_busy_runs,
        )
        stats.stopped_because = LOCK_BUSY
        return stats

    def _claim(
        self, conn: Connection, cursor: Any, request: RunRequest, settle_on: Connection | None = None
    ) -> _Batch | None:
        """Claim the next batch; ``None`` when none is left. Without ``settle_on`` the claim's transaction
        (and its row locks) stays open until the batch is settled on the same connection."""
        try:
            rows = self.store.claim(
                conn,
                cursor,
                self.config.batch_size,
                request.window,
                request.republish,
                request.named_rows,
                request.shard,
            )
            if not rows or settle_on is not None:
                conn.commit()
        except BaseException:
            _abandon(conn)
            raise
        if not rows:
            return None
        return _Batch(settle_on or conn, rows)

    def _publish(self, batch: _Batch, run: RunState, held_keys: set[Any]) -> None:
        """Produce the batch and wait for every delivery report (exactly once: commit its transaction);
        decides each row's outcome."""
        stats = run.stats
        stats.batches += 1
        stats.claimed += len(batch.rows)
        sendable, failures = self._prepare(batch.rows, held_keys, stats, run.request.republish)
        batch.sendable = len(sendable)
        started = self.clock()
        if self.exactly_once is not None:
            request = run.request
            sent = self.exactly_once.send(
                batch.rows, sendable, failures, held_keys, request.run_id, request.history_entry
            )
            batch.seq, batch.outcome, batch.failures = sent.seq, sent.outcome, sent.failures
            stats.dead_lettered += sent.dead_lettered
        else:
            batch.outcome = self.publisher.publish(sendable)
        waited = self.clock() - started
        stats.publish_seconds += waited
        stats.slowest_publish_seconds = max(stats.slowest_publish_seconds, waited)
        if self.exactly_once is None:
            failures += self.policy.failures_from(batch.outcome, batch.rows, held_keys)
            batch.failures = self._dead_letter(failures, stats, held_keys)
        self._count(batch, stats)

    def _settle(self, batch: _Batch, request: RunRequest) -> None:
        """Record the batch's outcome and commit (which also releases row locks the claim still held)."""
        conn = batch.conn
        try:
            acked = [batch.rows[m.ref] for m in batch.outcome.acked]
            self.store.mark_sent(conn, acked, request.run_id, request.history_entry)
            self.store.record_failures(conn, batch.failures, request.run_id)
            if self.exactly_once is not None and batch.seq is not None:
                self.exactly_once.record(conn, batch.seq)
            conn.commit()
        except BaseException:
            _abandon(conn)
            raise
        if self.exactly_once is not None and batch.seq is not None:
            self.exactly_once.recorded(batch.seq)
        self._log_failures(batch.failures)

    def _raise_if_unavailable(self, batch: _Batch) -> None:
        outcome = batch.outcome
        if not outcome.unavailable:
            return
        _message, reason = outcome.unavailable[0]
        raise BrokerUnavailableError(
            f"service {self.config.service}: Kafka did not acknowledge {len(outcome.unavailable)} of "
            f"{batch.sendable} messages within {self.publisher.flush_timeout_seconds:g}s ({reason}). "
            f"Is the broker reachable? {len(outcome.acked)} acknowledged rows were marked SENT; "
            "the rest stay NEW and are retried by the next run."
        )

    def _prepare(
        self, rows: list[OutboxRow], held_keys: set[Any], stats: RunStats, republish: bool
    ) -> tuple[list[OutboundMessage], list[Failure]]:
        """Turn rows into messages; poison rows fail now, rows behind a waiting row of their key wait."""
        messages: list[OutboundMessage] = []
        failures: list[Failure] = []
        sent = self.config.statuses.sent
        message, add = self.messages.message, messages.append
        for ref, row in enumerate(rows):
            if row.failed:
                continue  # gave up earlier (state kept in the attempt table); not a blocker any more
            if row.waiting or (held_keys and row.key is not None and row.key in held_keys):
                if row.key is not None:
                    held_keys.add(row.key)
                stats.held_back += 1
                continue
            try:
                add(message(ref, row, republish and row.status == sent))
            except PoisonRowError as exc:  # anything else is a bug: it crashes the run, no row pays for it
                failures.append(self.policy.failure(row, str(exc), held_keys))
        return messages, failures

    def _dead_letter(self, failures: list[Failure], stats: RunStats, held_keys: set[Any]) -> list[Failure]:
        """Copy rows that ran out of attempts to the dead-letter topic; only acked copies become FAILED."""
        topic = self.config.dead_letter_topic
        terminal = [f for f in failures if f.terminal]
        if topic is None or not terminal:
            return failures
        copies = [
            self.messages.dead_letter_copy(ref, f.row, f.error, topic) for ref, f in enumerate(terminal)
        ]
        outcome = self.publisher.publish(copies)
        stats.dead_lettered += len(outcome.acked)
        return after_dead_letter(failures, terminal, outcome, held_keys)

    def _log_failures(self, failures: list[Failure]) -> None:
        """Operators see every row given up on (and every retry) in the task log, with its error."""
        for f in failures:
            level = logging.WARNING if f.terminal else logging.INFO
            what = "FAILED (out of attempts)" if f.terminal else f"will retry in {f.delay_seconds:g}s"
            log.log(
                level,
                "service %s row %s (message %s) %s: %s",
                self.config.service,
                f.row.row_id,
                f.row.message_id,
                what,
                f.error,
            )

    def _count(self, batch: _Batch, stats: RunStats) -> None:
        outcome, sent = batch.outcome, self.config.statuses.sent
        replayed = sum(1 for m in outcome.acked if batch.rows[m.ref].status == sent)
        stats.published += len(outcome.acked) - replayed
        stats.republished += replayed
        stats.failed += sum(1 for f in batch.failures if f.terminal)
        stats.retried += sum(1 for f in batch.failures if not f.terminal)
        stats.held_back += len(outcome.held)
        self._count_topics(batch, stats)

    @staticmethod
    def _count_topics(batch: _Batch, stats: RunStats) -> None:
        """Acknowledged rows per topic (a batch mostly goes to one topic: one update then)."""
        acked, rows = batch.outcome.acked, batch.rows
        if not acked:
            return
        if acked[0].topic == acked[-1].topic and all(m.topic == acked[0].topic for m in acked):
            stats.count_acked(
                acked[0].topic, len(acked), rows[acked[0].ref].row_id, rows[acked[-1].ref].row_id
            )
            return
        for m in acked:
            row_id = rows[m.ref].row_id
            stats.count_acked(m.topic, 1, row_id, row_id)
