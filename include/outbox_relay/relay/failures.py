"""What a failed row costs: its retry delay, whether it is given up on, which keys must wait behind it,
and what a dead-letter copy's fate means for it. Pure decisions, no I/O: unit-tested on their own."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from outbox_relay.config import Retry
from outbox_relay.kafka.publisher import DeliveryOutcome
from outbox_relay.models import Failure, OutboxRow


class FailurePolicy:
    def __init__(self, retry: Retry) -> None:
        self.retry = retry

    def backoff_seconds(self, attempts_before: int) -> float:
        """Exponential: ``backoff_seconds * 2**attempts_before``, capped at ``max_backoff_seconds``. The
        exponent stops at 64 (far past any cap) so a legacy table's huge attempt count cannot overflow."""
        growth = 2.0 ** min(max(attempts_before, 0), 64)
        return float(min(self.retry.backoff_seconds * growth, self.retry.max_backoff_seconds))

    def failure(self, row: OutboxRow, error: str, held_keys: set[Any]) -> Failure:
        """Terminal once out of attempts (or at once for a row whose retry flag is 0); a retryable row
        holds back the newer rows of its key until its retry."""
        terminal = not row.retry or row.attempts + 1 >= self.retry.max_attempts
        if not terminal and row.key is not None:
            held_keys.add(row.key)
        return Failure(row, error, terminal, self.backoff_seconds(row.attempts))

    def failures_from(
        self, outcome: DeliveryOutcome, rows: Sequence[OutboxRow], held_keys: set[Any]
    ) -> list[Failure]:
        """Broker rejections become failures; held and unacknowledged rows only hold their keys back."""
        failures = [self.failure(rows[m.ref], error, held_keys) for m, error in outcome.rejected]
        for message in [*outcome.held, *(m for m, _reason in outcome.unavailable)]:
            key = rows[message.ref].key
            if key is not None:
                held_keys.add(key)
        return failures


def after_dead_letter(
    failures: Sequence[Failure], terminal: Sequence[Failure], copies: DeliveryOutcome, held_keys: set[Any]
) -> list[Failure]:
    """The failures to record once the terminal ones' dead-letter copies (``ref`` = index in ``terminal``)
    were published: an acknowledged copy lets its row become FAILED; a rejected copy (it can never land,
    e.g. too large) also ends FAILED, with both errors; an unacknowledged copy keeps its row retryable
    rather than lose the copy, and then holds back the newer rows of its key like any retry."""
    acked = {m.ref for m in copies.acked}
    rejected = {m.ref: reason for m, reason in copies.rejected}
    kept = [f for f in failures if not f.terminal]
    for ref, f in enumerate(terminal):
        if ref in acked:
            kept.append(f)
        elif ref in rejected:
            kept.append(replace(f, error=f"{f.error}; dead-letter copy rejected: {rejected[ref]}"))
        else:
            kept.append(replace(f, error=f"{f.error}; dead-letter copy not acknowledged", terminal=False))
            if f.row.key is not None:
                held_keys.add(f.row.key)
    return kept
