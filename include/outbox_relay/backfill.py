"""Backfill: relay (and optionally republish) the rows created in one time window, in one run however long
the window is, taking turns with the scheduled relay.

A backfill holds the table's *backfill* lock for its whole run (a second backfill of the table is refused)
and the *relay* lock only chunk by chunk: between chunks a waiting scheduled relay gets its turn, so fresh
rows keep flowing. Two relays of one table never run at once, and a scheduled relay that finds the relay
lock busy while a backfill runs says so instead of counting towards "wedged".

Per-key order: rows are claimed in primary-key order; a window's row whose key still has an unpublished
row created *before* the window is held back (left NEW, for the scheduled relay to send in order), so a
backfill never overtakes a row of its key. With ``republish``, SENT rows of the window are published
again (``outbox-replay: true``), keeping their status and ``relay_run_id``; each is a replay-history row
of the backfill's run, which is also where a retried attempt of that run resumes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError, InfrastructureError
from outbox_relay.models import (
    BackfillJob,
    RunStats,
    StatsMixin,
    count_acked,
)
from outbox_relay.relay.engine import BUDGET_SPENT, OutboxRelay, RunKind, RunRequest
from outbox_relay.store.outbox import OutboxStore

log = logging.getLogger(__name__)

HANDOVER_SECONDS = 0.2  # pause between chunks, for a relay waiting on the lock


class BackfillBusyError(InfrastructureError):
    """Another backfill of the same table is running."""


@dataclass
class BackfillReport(StatsMixin):
    service: str
    window_start: str
    window_end: str
    republish: bool
    dry_run: bool
    rows_in_window: dict[str, int] = field(default_factory=dict)  # by status, before the run
    resumed_after: Any = None  # a retried attempt of a republishing run: rows up to here were sent
    chunks: int = 0
    published: int = 0
    republished: int = 0
    held_back: int = 0
    retried: int = 0
    failed: int = 0
    dead_lettered: int = 0
    elapsed_seconds: float = 0.0
    stopped_because: str = "drained"

    topics: dict[str, dict[str, Any]] = field(default_factory=dict)  # as ``RunStats.topics``, all chunks

    def add(self, stats: RunStats) -> None:
        self.chunks += 1
        for name in ("published", "republished", "held_back", "retried", "failed", "dead_lettered"):
            setattr(self, name, getattr(self, name) + getattr(stats, name))
        for topic, acked in stats.topics.items():
            count_acked(self.topics, topic, acked["rows"], acked["first_row_id"], acked["last_row_id"])

    @property
    def sent(self) -> int:
        return self.published + self.republished

    def lines(self) -> list[str]:
        window = f"[{self.window_start}, {self.window_end})"
        found = ", ".join(f"{n} {s}" for s, n in sorted(self.rows_in_window.items())) or "no rows"
        head = f"service {self.service}: backfill of rows created in {window}: {found}"
        if self.dry_run:
            what = "NEW rows would be relayed" + (", SENT rows republished" if self.republish else "")
            return [head, f"  dry run: nothing changed ({what})"]
        lines = [
            head,
            f"  {self.published} published, {self.republished} republished, {self.held_back} held back "
            f"behind an older unpublished row of their key, {self.retried} to retry, {self.failed} failed "
            f"({self.chunks} chunks, {self.elapsed_seconds:g}s; {self.stopped_because})",
        ]
        if self.resumed_after is not None:
            lines.append(f"  resumed after row {self.resumed_after} (sent by an earlier attempt of this run)")
        return lines


def throttle_delay(rows_done: int, elapsed: float, max_rows_per_second: float | None) -> float:
    """Seconds to wait so that ``rows_done`` rows took at least ``rows_done / rate`` seconds."""
    if not max_rows_per_second:
        return 0.0
    return max(0.0, rows_done / max_rows_per_second - elapsed)


class Backfiller:
    def __init__(
        self,
        config: ServiceConfig,
        engine: Engine,
        relay: OutboxRelay | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.engine = engine
        self.relay = relay
        self.store = OutboxStore(config)
        self.clock = clock
        self.sleep = sleep

    def check(self, request: BackfillJob) -> None:
        """Refuse a request this service cannot serve, naming what is wrong."""
        c = self.config
        if c.columns.created_at is None:
            raise ConfigurationError(
                f"backfill: service {c.service!r} maps no columns.created_at, so rows cannot be selected by "
                "creation time (the scheduled relay sends every eligible row anyway)"
            )
        if request.republish and not c.keeps_sent_rows:
            raise ConfigurationError(
                f"backfill: service {c.service!r} has completion: {c.completion}, so its table keeps no SENT "
                "rows to republish; backfill without republish"
            )
        if request.chunk_seconds < 1:
            raise ConfigurationError(
                f"backfill: chunk_seconds must be at least 1, not {request.chunk_seconds}"
            )
        if request.max_rows_per_second is not None and request.max_rows_per_second <= 0:
            raise ConfigurationError(
                f"backfill: max_rows_per_second must be positive, not {request.max_rows_per_second}"
            )
        if not request.history.reason.strip():
            raise ConfigurationError("backfill: a reason is required (it is kept in the row history)")

    def run(
        self, request: BackfillJob, progress: Callable[[BackfillReport], None] | None = None
    ) -> BackfillReport:
        """Drain the window chunk by chunk; ``progress`` is called after each chunk."""
        self.check(request)
        started = self.clock()
        report = BackfillReport(
            self.config.service,
            str(request.window.start),
            str(request.window.end),
            request.republish,
            request.dry_run,
        )
        with self.engine.connect() as guard:
            if not self.store.backfill_lock.acquire(guard, 0):
                holder = self.store.backfill_lock.holder(guard)
                raise BackfillBusyError(
                    f"service {self.config.service}: another backfill of {self.config.table} is running "
                    f"(MySQL connection id {holder}); wait for it to end, or cancel it"
                )
            try:
                report.rows_in_window = self.store.backfills.counts(guard, request.window)
                if request.republish:
                    report.resumed_after = self.store.backfills.resume_point(
                        guard, request.window, request.history.run_id
                    )
                guard.commit()
                if not request.dry_run:
                    self._drain(request, report, started, progress)
            finally:
                self.store.backfill_lock.release(guard)
        report.elapsed_seconds = round(self.clock() - started, 3)
        return report

    def _drain(
        self,
        request: BackfillJob,
        report: BackfillReport,
        started: float,
        progress: Callable[[BackfillReport], None] | None,
    ) -> None:
        if self.relay is None:
            raise ConfigurationError("a backfill that is not a dry run needs a relay (a producer)")
        # Throttled: about one batch per chunk, then a pause, so the pace holds batch by batch.
        batches = 1 if request.max_rows_per_second else None
        cursor = report.resumed_after
        while True:
            stats = self.relay.run(
                RunRequest(
                    run_id=request.history.run_id,
                    window=request.window,
                    republish=request.republish,
                    history=request.history if request.republish else None,
                    time_budget_seconds=request.chunk_seconds,
                    max_batches=batches,
                    start_after=cursor,
                    kind=RunKind.BACKFILL,
                )
            )
            report.add(stats)
            report.elapsed_seconds = round(self.clock() - started, 3)
            if progress is not None:
                progress(report)
            if stats.stopped_because != BUDGET_SPENT:
                report.stopped_because = stats.stopped_because
                return
            if stats.last_position is not None:
                cursor = stats.last_position
            wait = throttle_delay(report.sent, self.clock() - started, request.max_rows_per_second)
            self.sleep(max(wait, HANDOVER_SECONDS))
