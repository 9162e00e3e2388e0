"""A service's last hour as minute series (published, confirmed, failed, backlog): what the Outbox page
draws. The backlog is reconstructed from the rows (``store.activity``), so it needs no sampling process."""

from __future__ import annotations

from dataclasses import dataclass, field

from outbox_relay.config import ServiceConfig
from outbox_relay.models import BacklogRows, StatsMixin
from outbox_relay.store.activity import PENDING_COUNTED


@dataclass
class HourActivity(StatsMixin):
    minutes: list[str] = field(default_factory=list)  # 60 minutes on the database clock, oldest first
    published: list[int] | None = None  # None: the table cannot say (see notes)
    confirmed: list[int] | None = None
    failed: list[int] | None = None
    backlog: list[int] | None = None  # rows created and not yet sent (nor given up on), at each minute
    notes: list[str] = field(default_factory=list)


def per_minute_series(minutes: list[str], counts: dict[str, int] | None) -> list[int] | None:
    return None if counts is None else [counts.get(m, 0) for m in minutes]


def backlog_series(minutes: list[str], rows: BacklogRows) -> list[int]:
    """At each minute m: rows created by m that are still pending, plus rows created by m that left the
    backlog (sent, or given up on) after m."""
    line = []
    for m in minutes:
        pending = sum(n for created, n in rows.pending_by_created.items() if created <= m)
        in_flight = sum(
            n for (created, left), n in rows.left_by_created_and_left.items() if created <= m < left
        )
        line.append(pending + in_flight)
    return line


def backlog_notes(config: ServiceConfig, rows: BacklogRows | None) -> list[str]:
    """What the backlog line leaves out, in words for the page."""
    if rows is None:
        return ["no backlog line: the table has no creation time (columns.created_at)"]
    notes = []
    if rows.pending_capped:
        notes.append(f"backlog counted up to {PENDING_COUNTED:,} pending rows: the line is a lower bound")
    if config.completion in {"delete", "archive"}:
        notes.append(
            f"completion: {config.completion} removes sent rows, so the past backlog counts only rows "
            "still pending"
        )
    elif not rows.left_known:
        notes.append(
            "the past backlog counts only rows still pending (rows that left it in the hour need "
            "sent_at and updated_at columns and an index on (status, updated_at))"
        )
    return notes
