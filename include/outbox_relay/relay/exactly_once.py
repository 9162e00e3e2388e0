"""``delivery: exactly_once``: each batch is one Kafka transaction (its messages, its dead-letter copies and
a progress record), and the database transaction that marks it SENT records its sequence number.

The only window in which at-least-once delivery duplicates (the broker acknowledged a batch, the SENT
update did not commit) is closed on the next start: the relay fences every older producer of its rows,
reads the committed progress records it had not recorded, and marks their rows SENT without publishing
them again. A fenced relay can commit nothing more to Kafka, and its database transaction rolls back.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import Connection

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import MisuseError
from outbox_relay.kafka.progress import (
    PROGRESS_PARTITION,
    BatchRecord,
    ProgressRecord,
    progress_end,
    relay_id,
    scan_progress,
)
from outbox_relay.kafka.publisher import DeliveryOutcome
from outbox_relay.kafka.records import OutboundMessage
from outbox_relay.kafka.transactions import TransactionalPublisher, TransactionsUnavailableError
from outbox_relay.models import Failure, HistoryEntry, OutboxRow
from outbox_relay.relay.failures import FailurePolicy
from outbox_relay.relay.messages import MessageBuilder
from outbox_relay.store.outbox import OutboxStore
from outbox_relay.store.progress import ProgressCheckpoints

log = logging.getLogger(__name__)

# A transaction one of whose messages the broker refused is sent again without it, this often in all.
TRANSACTION_ATTEMPTS = 3


@dataclass
class ExactlyOnceClients:
    """What the glue builds from the service's Kafka connection for an exactly-once run."""

    publisher: TransactionalPublisher  # transactional.id: relay_id(config, shard)
    consumer: Any  # reads the progress topic with isolation.level=read_committed, assigned (no group)
    admin: Any  # an admin client: the progress partition's end, as a read-uncommitted client sees it
    fence: Callable[[str], None]  # start a producer with that transactional id once (fencing its owner)


def check_clients(config: ServiceConfig, clients: ExactlyOnceClients | None) -> None:
    """A relay gets exactly-once clients if and only if its service delivers exactly once."""
    if (config.delivery == "exactly_once") != (clients is not None):
        needs = (
            "its exactly-once clients (a transactional publisher)"
            if clients is None
            else "no exactly-once clients"
        )
        raise MisuseError(f"service {config.service!r} delivers {config.delivery}: the relay needs {needs}")


def related_shards(config: ServiceConfig, shard: int | None) -> list[int | None]:
    """The other relays whose rows this run may touch: a shard's run and a whole-table run (a backfill, a
    replay) of a sharded service overlap, so each fences the other's producers and reads its progress."""
    if config.shards == 1:
        return []
    return [None] if shard is not None else list(range(config.shards))


@dataclass
class TransactionResult:
    """A batch's transaction as the relay records it."""

    seq: int
    outcome: DeliveryOutcome  # the batch's own messages (refs: rows of the batch)
    failures: list[Failure]
    dead_lettered: int


class ExactlyOnce:
    """One run's exactly-once bookkeeping (built per run, like the relay)."""

    def __init__(
        self, config: ServiceConfig, store: OutboxStore, messages: MessageBuilder, clients: ExactlyOnceClients
    ) -> None:
        check_clients(config, clients)
        self.config = config
        self.store = store
        self.messages = messages
        self.clients = clients
        self.checkpoints = ProgressCheckpoints(config.service)
        self.policy = FailurePolicy(config.retry)
        self.shard: int | None = None
        self._seq = 0
        self._unrecorded: dict[int, BatchRecord] = {}  # sent to Kafka, not yet seen committed here
        self._guard = threading.Lock()

    # --- start: fence, then finish what a crashed predecessor left ----------------------

    def begin(self, conn: Connection, shard: int | None) -> int:
        """Fence every older producer of these rows, then mark SENT the rows of committed transactions this
        database has not recorded (a crash between the two commits). Returns how many rows were marked."""
        self.shard = shard
        own = relay_id(self.config, shard)
        if self.clients.publisher.transactional_id != own:
            raise MisuseError(
                f"a run of {own!r} was given the producer of {self.clients.publisher.transactional_id!r}: "
                "each shard's relay needs its own (relays.service_relay builds it)"
            )
        self.clients.publisher.start()
        others = related_shards(self.config, shard)
        for other in others:
            self.clients.fence(relay_id(self.config, other))
        topic = self.config.kafka.progress_topic
        probe = f"{own}#aborted-probe"
        self.clients.publisher.abort_probe(self._progress_message(ProgressRecord(probe, 0, probe, ())))
        end = progress_end(self.clients.admin, topic)
        shards = [shard, *others]
        found = {s: self.checkpoints.read(conn, s) for s in shards}
        conn.commit()
        start = min((c.scan_from if c is not None else 0) for c in found.values())
        keys = {relay_id(self.config, s): s for s in shards}
        timeout = self.config.kafka.transaction_timeout_ms / 1000 + self.config.kafka.flush_timeout_seconds
        latest = scan_progress(self.clients.consumer, topic, [*keys, probe], start, end, timeout)
        if probe in latest:
            raise TransactionsUnavailableError(
                f"service {self.config.service}: the broker showed a record of an aborted Kafka transaction to a "
                f"read_committed reader (progress topic {topic}), so it cannot hide what a crashed or fenced "
                "relay left unfinished: delivery: exactly_once needs a broker with Kafka transactions (Apache "
                "Kafka); set delivery: at_least_once for this broker"
            )
        recovered = 0
        for key, s in keys.items():
            checkpoint = found[s]
            recorded = checkpoint.seq if checkpoint is not None else 0
            record = latest.get(key)
            self.checkpoints.start(conn, s, end)
            if record is not None:
                recovered += self._recover(conn, record, recorded)
            last = max(recorded, record.seq if record is not None else 0)
            self.checkpoints.advance(conn, s, last, scan_from=end)
            if s == shard:
                self._seq = last
            conn.commit()
        return recovered

    def _recover(self, conn: Connection, record: ProgressRecord, recorded: int) -> int:
        """Mark the rows of the record's batches beyond ``recorded`` as their run would have."""
        marked = 0
        for batch in record.batches:
            if batch.seq <= recorded:
                continue
            rows = self._rows(conn, batch.sent, republish=batch.history is not None)
            marked += len(rows)
            self.store.mark_sent(conn, rows, batch.run_id, batch.history)
            errors = dict(batch.dead_lettered)
            dead = self._rows(conn, list(errors), republish=False)
            self.store.record_failures(
                conn,
                [Failure(r, errors[r.row_id], True, 0.0) for r in dead if r.row_id in errors],
                batch.run_id,
            )
            log.warning(
                "service %s: batch %s of run %s was committed to Kafka (progress record by %s) but not marked "
                "here: %s rows marked SENT and %s FAILED without publishing them again",
                self.config.service,
                batch.seq,
                batch.run_id,
                record.producer,
                len(rows),
                len(dead),
            )
        return marked

    def _rows(self, conn: Connection, ids: Sequence[Any], republish: bool) -> list[OutboxRow]:
        if not ids:
            return []
        start = self.store.cursor_start(conn)
        return self.store.claim(conn, start, len(ids), republish=republish, named=list(ids))

    # --- each batch: one transaction -----------------------------------------------------

    def send(
        self,
        rows: Sequence[OutboxRow],
        messages: list[OutboundMessage],
        failures: list[Failure],
        held_keys: set[Any],
        run_id: str,
        history: HistoryEntry | None,
    ) -> TransactionResult:
        """The batch's messages, the dead-letter copies of its rows given up on and its progress record in
        one transaction. A message the broker refused fails its row (its key's other rows wait) and the
        transaction is sent again without it; so is a dead-letter copy that can never land."""
        with self._guard:
            self._seq += 1
            seq = self._seq
        copy_refused: dict[int, str] = {}  # index among the terminal failures -> why its copy cannot land
        held: list[OutboundMessage] = []
        own = copied = DeliveryOutcome()
        for _attempt in range(TRANSACTION_ATTEMPTS):
            terminal = [f for f in failures if f.terminal]
            copies = self._copies(terminal, copy_refused, first_ref=len(rows))
            dead = tuple(
                (terminal[c.ref - len(rows)].row.row_id, terminal[c.ref - len(rows)].error) for c in copies
            )
            sent = tuple(rows[m.ref].row_id for m in messages)
            progress = self._progress(BatchRecord(seq, run_id, sent, dead, history))
            outcome = self.clients.publisher.publish_transaction([*messages, *copies], progress)
            own, copied = _split(outcome, len(rows))
            refused = DeliveryOutcome(rejected=own.rejected, held=own.held)
            failures = failures + self.policy.failures_from(refused, rows, held_keys)
            held += own.held
            copy_refused.update({c.ref - len(rows): reason for c, reason in copied.rejected})
            if not outcome.aborted:
                break
            messages = [m for m in own.aborted if not _held(rows[m.ref], held_keys)]
            held += [m for m in own.aborted if _held(rows[m.ref], held_keys)]
        else:
            reason = f"Kafka transaction aborted {TRANSACTION_ATTEMPTS} times (a message refused each time)"
            own = DeliveryOutcome(unavailable=[(m, reason) for m in messages])
            copied = DeliveryOutcome(unavailable=[(m, reason) for m in copied.aborted])
        delivered = not own.unavailable and not copied.unavailable
        return TransactionResult(
            seq,
            DeliveryOutcome(acked=own.acked, unavailable=own.unavailable, held=held),
            self._settled(failures, copy_refused, delivered, held_keys),
            len(copied.acked),
        )

    def _copies(
        self, terminal: list[Failure], refused: dict[int, str], first_ref: int
    ) -> list[OutboundMessage]:
        """Dead-letter copies of the rows given up on (``ref``: ``first_ref`` + index among them)."""
        topic = self.config.dead_letter_topic
        if topic is None:
            return []
        return [
            self.messages.dead_letter_copy(first_ref + i, f.row, f.error, topic)
            for i, f in enumerate(terminal)
            if i not in refused
        ]

    def _settled(
        self, failures: list[Failure], copy_refused: dict[int, str], delivered: bool, held_keys: set[Any]
    ) -> list[Failure]:
        """Failures as recorded: a row given up on whose copy can never land ends FAILED with both errors;
        one whose copy was not delivered (the broker failed) stays retryable rather than lose the copy."""
        if self.config.dead_letter_topic is None:
            return failures
        settled, index = [], 0
        for f in failures:
            if not f.terminal:
                settled.append(f)
                continue
            if index in copy_refused:
                settled.append(
                    replace(f, error=f"{f.error}; dead-letter copy rejected: {copy_refused[index]}")
                )
            elif delivered:
                settled.append(f)
            else:
                settled.append(
                    replace(f, error=f"{f.error}; dead-letter copy not acknowledged", terminal=False)
                )
                if f.row.key is not None:
                    held_keys.add(f.row.key)
            index += 1
        return settled

    def _progress(self, record: BatchRecord) -> OutboundMessage:
        """The progress record: this batch and every earlier one not yet seen committed in the database."""
        with self._guard:
            self._unrecorded[record.seq] = record
            batches = tuple(self._unrecorded[s] for s in sorted(self._unrecorded))
        key = self.clients.publisher.transactional_id  # the relay's id (checked in ``begin``)
        return self._progress_message(ProgressRecord(key, record.seq, key, batches))

    def _progress_message(self, record: ProgressRecord) -> OutboundMessage:
        """A record on the progress topic, under its key, on the topic's one partition."""
        topic = self.config.kafka.progress_topic
        return OutboundMessage(-1, topic, record.key.encode(), record.encode(), [], PROGRESS_PARTITION)

    def record(self, conn: Connection, seq: int) -> None:
        """In the batch's database transaction: its sequence number is recorded with its rows."""
        self.checkpoints.advance(conn, self.shard, seq)

    def recorded(self, seq: int) -> None:
        """The batch's database transaction committed: later progress records need not name it."""
        with self._guard:
            self._unrecorded.pop(seq, None)


def _split(outcome: DeliveryOutcome, rows: int) -> tuple[DeliveryOutcome, DeliveryOutcome]:
    """The batch's own messages (``ref`` < ``rows``) apart from its dead-letter copies."""

    def part(mine: bool) -> DeliveryOutcome:
        def keep(m: OutboundMessage) -> bool:
            return (m.ref < rows) == mine

        return DeliveryOutcome(
            acked=[m for m in outcome.acked if keep(m)],
            rejected=[(m, r) for m, r in outcome.rejected if keep(m)],
            unavailable=[(m, r) for m, r in outcome.unavailable if keep(m)],
            held=[m for m in outcome.held if keep(m)],
            aborted=[m for m in outcome.aborted if keep(m)],
        )

    return part(True), part(False)


def _held(row: OutboxRow, held_keys: set[Any]) -> bool:
    return row.key is not None and row.key in held_keys
