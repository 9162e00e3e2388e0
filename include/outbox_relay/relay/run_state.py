"""Where a relay run stands against its clock: its budget, and (polling or lingering) whether it should look
for rows once more after a pass that drained the table."""

from __future__ import annotations

from dataclasses import dataclass

from outbox_relay.models import RunStats
from outbox_relay.relay.run_request import RunRequest


@dataclass
class RunState:
    """One run's progress, and how it looks again once drained. ``interval``, ``polling`` and ``linger`` are
    fixed for the run (the request's or the service's poll interval, the service's linger): set once, at
    the start of its drain, not passed in on every look."""

    request: RunRequest
    stats: RunStats
    started: float
    budget: float
    last_work: float | None = None  # when a pass last claimed rows (a linger counts from there)
    claimed_seen: int = -1
    interval: float = 0.0  # seconds between two looks after a drained pass
    polling: bool = False  # look again until the budget is spent
    linger: float = 0.0  # look again until no row was claimed for this long (0: no linger)

    def budget_left(self, now: float) -> float:
        return self.budget - (now - self.started)

    def looks_again(self, now: float) -> bool:
        """After a pass that drained the table: polling looks again until the budget is spent, a linger
        until no row was claimed for ``linger`` seconds (both only while another look fits the budget)."""
        if self.stats.claimed != self.claimed_seen or self.last_work is None:
            self.last_work, self.claimed_seen = now, self.stats.claimed
        if not (self.polling or self.linger) or self.budget_left(now) <= self.interval:
            return False
        return not self.linger or now - self.last_work < self.linger
