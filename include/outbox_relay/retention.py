"""Delete old terminal rows in bounded primary-key chunks.

Candidates are found with a plain (non-locking) read and deleted by primary key
with status and age re-checked, so a chunk locks only rows it deletes and never
a NEW or unconfirmed row.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig, StatusValue
from outbox_relay.errors import MissingConfigurationError
from outbox_relay.models import StatsMixin
from outbox_relay.store.outbox import OutboxStore

log = logging.getLogger(__name__)


@dataclass
class RetentionStats(StatsMixin):
    deleted_terminal: int = 0
    deleted_failed: int = 0
    deleted_sent_ranges: int = 0
    chunks: int = 0
    elapsed_seconds: float = 0.0
    stopped_because: str = "nothing left to delete"


class RetentionCleaner:
    def __init__(
        self, config: ServiceConfig, engine: Engine, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if config.retention is None:
            raise MissingConfigurationError(
                f"service {config.service!r} has retention disabled ('retention: null')"
            )
        self.config = config
        self.retention = config.retention
        self.engine = engine
        self.store = OutboxStore(config)
        self.queries = self.store.retention
        self.clock = clock

    def run(self, time_budget_seconds: float = 600) -> RetentionStats:
        stats = RetentionStats()
        started = self.clock()
        deadline = started + time_budget_seconds
        day = 86_400.0
        stats.deleted_terminal = self._purge(
            self.config.terminal_statuses, self.retention.days * day, deadline, stats
        )
        failed_age = self.retention.failed_days * day
        failed = self.config.statuses.failed
        if failed is not None:  # FAILED by the relay (inline state) or by a consumer's answer
            stats.deleted_failed = self._purge((failed,), failed_age, deadline, stats)
        if not self.config.columns.inline_retry_state:  # given up on, state in the attempt table
            stats.deleted_failed += self._purge_attempt_table(failed_age, deadline, stats)
        stats.deleted_sent_ranges = self._purge_sent_ranges(deadline)
        if self.clock() >= deadline:
            stats.stopped_because = "time budget spent"
        stats.elapsed_seconds = round(self.clock() - started, 3)
        log.info("service %s retention: %s", self.config.service, stats.as_dict())
        return stats

    def _purge(
        self, statuses: Sequence[StatusValue], age_seconds: float, deadline: float, stats: RetentionStats
    ) -> int:
        deleted = 0
        after: Any = None
        with self.engine.connect() as conn:
            after = self.store.cursor_start(conn)
            conn.commit()
            while self.clock() < deadline:
                ids = self.queries.expired_ids(conn, statuses, age_seconds, after, self.retention.chunk_size)
                conn.commit()
                if not ids:
                    break
                with conn.begin():
                    deleted += self.queries.delete_expired(conn, ids, statuses, age_seconds)
                stats.chunks += 1
                after = ids[-1]
        return deleted

    def _purge_attempt_table(self, age_seconds: float, deadline: float, stats: RetentionStats) -> int:
        deleted = 0
        with self.engine.connect() as conn:
            while self.clock() < deadline:
                row_ids = self.queries.expired_given_up_ids(conn, age_seconds, self.retention.chunk_size)
                conn.commit()
                if not row_ids:
                    break
                with conn.begin():
                    deleted += self.queries.delete_given_up(conn, row_ids)
                stats.chunks += 1
        return deleted

    def _purge_sent_ranges(self, deadline: float) -> int:
        """The sent-range records of rows now all deleted (which run sent a row is kept while it exists)."""
        deleted = 0
        with self.engine.connect() as conn:
            while self.clock() < deadline:
                with conn.begin():
                    chunk = self.queries.forget_sent_ranges(conn, self.retention.chunk_size)
                deleted += chunk
                if chunk < self.retention.chunk_size:
                    break
        return deleted
