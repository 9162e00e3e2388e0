"""Where a relay run stands against its clock: its budget, and (polling or lingering) whether it should look
for rows once more after a pass that drained the table."""

from __future__ import annotations

from dataclasses import dataclass

from outbox_relay.models import RunStats
from outbox_relay.relay.run_request import RunRequest


@dataclass
class RunState:
    request: RunRequest
    stats: RunStats
    started: float
    budget: float
    last_work: float | None = None  # when a pass last claimed rows (a linger counts from there)
    claimed_seen: int = -1

    def budget_left(self, now: float) -> float:
        return self.budget - (now - self.started)

    def looks_again(self, now: float, interval: float, polling: bool, linger: float) -> bool:
        """After a pass that drained the table: polling looks again until the budget is spent, a linger
        until no row was claimed for ``linger`` seconds (both only while another look fits the budget)."""
        if self.stats.claimed != self.claimed_seen or self.last_work is None:
            self.last_work, self.claimed_seen = now, self.stats.claimed
        if not (polling or linger) or self.budget_left(now) <= interval:
            return False
        return not linger or now - self.last_work < linger
