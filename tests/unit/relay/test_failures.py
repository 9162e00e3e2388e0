"""What a failed row costs: retry delay, giving up, which keys wait behind it, and what a dead-letter
copy's fate means for it. Pure decisions; a wrong one either loses a row (FAILED without its dead-letter
copy) or breaks per-key order (a newer row of a key overtakes an older one that waits for its retry)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from outbox_relay.config import Retry, ServiceConfig
from outbox_relay.kafka.publisher import DeliveryOutcome
from outbox_relay.kafka.records import OutboundMessage
from outbox_relay.models import Failure, OutboxRow, RunStats
from outbox_relay.relay.engine import OutboxRelay, RunRequest, _Batch
from outbox_relay.relay.failures import FailurePolicy, after_dead_letter
from outbox_relay.relay.run_state import RunState


def _row(row_id: int = 1, key: Any = "k1", attempts: int = 0, retry: bool = True) -> OutboxRow:
    return OutboxRow(
        row_id=row_id,
        message_id=f"m{row_id}",
        key=key,
        event_type="OrderPlaced",
        topic="orders.events",
        body='{"n": 1}',
        extra_headers=None,
        status="NEW",
        attempts=attempts,
        valid_json=True,
        retry=retry,
    )


def _msg(ref: int, topic: str = "orders.events") -> OutboundMessage:
    return OutboundMessage(ref, topic, b"k", b"{}", [])


def _policy(max_attempts: int = 3, backoff: float = 10, cap: float = 60) -> FailurePolicy:
    return FailurePolicy(Retry(max_attempts=max_attempts, backoff_seconds=backoff, max_backoff_seconds=cap))


# --- backoff ------------------------------------------------------------------------------


def test_backoff_doubles_per_attempt_up_to_the_cap() -> None:
    """backoff * 2**attempts_before, never more than max_backoff_seconds."""
    policy = _policy(backoff=10, cap=60)
    assert [policy.backoff_seconds(n) for n in range(6)] == [10.0, 20.0, 40.0, 60.0, 60.0, 60.0]
    assert isinstance(policy.backoff_seconds(0), float)


def test_a_zero_backoff_retries_at_once() -> None:
    """backoff_seconds: 0 is allowed and means no delay, whatever the attempt."""
    policy = _policy(backoff=0, cap=60)
    assert policy.backoff_seconds(0) == policy.backoff_seconds(7) == 0.0


def test_backoff_is_capped_for_any_attempt_count() -> None:
    """A mapped legacy attempts column may already hold a large count; the delay is then simply the cap.

    Fails today: with a float backoff (any YAML value, e.g. ``backoff_seconds: 10`` becomes 10.0) and
    attempts >= 1024, ``backoff * 2**attempts`` raises OverflowError (int too large to convert to float)
    before ``min`` caps it, which crashes the whole relay run on that row, every run."""
    policy = FailurePolicy(Retry.model_validate({"max_attempts": 5, "backoff_seconds": 10}))
    assert policy.backoff_seconds(1024) == 3600.0
    failure = policy.failure(_row(attempts=2000), "boom", set())
    assert failure.terminal is True
    assert failure.delay_seconds == 3600.0


# --- one failure -------------------------------------------------------------------------


def test_a_retryable_failure_holds_its_key_back() -> None:
    """Newer rows of the key must wait until this one is retried (per-key order)."""
    held: set[Any] = set()
    failure = _policy(max_attempts=3).failure(_row(attempts=1), "broker said no", held)
    assert failure == Failure(_row(attempts=1), "broker said no", False, 20.0)
    assert held == {"k1"}


def test_the_last_attempt_is_terminal_and_holds_nothing() -> None:
    """Out of attempts the row is given up on; its key is free for the newer rows."""
    held: set[Any] = set()
    failure = _policy(max_attempts=3).failure(_row(attempts=2), "still no", held)
    assert failure.terminal is True
    assert failure.delay_seconds == 40.0
    assert held == set()


def test_one_attempt_allowed_means_terminal_at_once() -> None:
    """max_attempts: 1 gives up on the first failure."""
    assert _policy(max_attempts=1).failure(_row(attempts=0), "e", set()).terminal is True


def test_a_row_whose_retry_flag_is_off_is_terminal_at_once() -> None:
    """retry_flag 0: FAILED on the first failure, however many attempts remain."""
    held: set[Any] = set()
    failure = _policy(max_attempts=10).failure(_row(attempts=0, retry=False), "e", held)
    assert failure.terminal is True
    assert held == set()


def test_a_row_without_key_holds_nothing() -> None:
    """Keyless messages have no order to keep; None must not become a held key."""
    held: set[Any] = set()
    failure = _policy().failure(_row(key=None), "e", held)
    assert failure.terminal is False
    assert held == set()


# --- a batch's delivery outcome ----------------------------------------------------------


def test_failures_from_maps_rejections_to_their_rows() -> None:
    """``ref`` is the row's index in the batch: each rejection fails exactly that row, with its reason."""
    rows = [_row(1, "a"), _row(2, "b", attempts=2), _row(3, "c"), _row(4, "d"), _row(5, "e")]
    outcome = DeliveryOutcome(
        acked=[_msg(0)],
        rejected=[(_msg(1), "MSG_SIZE_TOO_LARGE"), (_msg(2), "INVALID_RECORD")],
        unavailable=[(_msg(3), "_MSG_TIMED_OUT")],
        held=[_msg(4)],
    )
    held: set[Any] = set()
    failures = _policy(max_attempts=3).failures_from(outcome, rows, held)
    assert [(f.row.row_id, f.error, f.terminal) for f in failures] == [
        (2, "MSG_SIZE_TOO_LARGE", True),
        (3, "INVALID_RECORD", False),
    ]
    # c: retryable failure; d: not acknowledged (stays NEW); e: held behind an older message of its key.
    assert held == {"c", "d", "e"}


def test_held_and_unavailable_messages_are_not_failures() -> None:
    """Broker trouble and held-back rows cost no attempt: no failure is recorded for them."""
    rows = [_row(1, "a"), _row(2, None)]
    outcome = DeliveryOutcome(unavailable=[(_msg(0), "_TRANSPORT")], held=[_msg(1)])
    held: set[Any] = {"earlier"}
    assert _policy().failures_from(outcome, rows, held) == []
    assert held == {"earlier", "a"}


# --- dead-letter copies -------------------------------------------------------------------


def _terminal(row_id: int, error: str) -> Failure:
    return Failure(_row(row_id), error, True, 40.0)


def _after(
    failures: Sequence[Failure], copies: DeliveryOutcome, held: set[Any] | None = None
) -> list[Failure]:
    terminal = [f for f in failures if f.terminal]
    return after_dead_letter(failures, terminal, copies, set() if held is None else held)


def test_an_acknowledged_copy_lets_the_row_fail() -> None:
    """The copy is safe on the dead-letter topic: the row may become FAILED unchanged."""
    failures = [_terminal(1, "too large")]
    kept = _after(failures, DeliveryOutcome(acked=[_msg(0, "orders.dlq")]))
    assert kept == failures


def test_a_rejected_copy_fails_the_row_with_both_errors() -> None:
    """A copy that can never land (e.g. too large there too) must not keep the row retrying forever."""
    failures = [_terminal(1, "too large")]
    kept = _after(failures, DeliveryOutcome(rejected=[(_msg(0, "orders.dlq"), "MSG_SIZE_TOO_LARGE")]))
    assert len(kept) == 1
    assert kept[0].terminal is True
    assert kept[0].error == "too large; dead-letter copy rejected: MSG_SIZE_TOO_LARGE"
    assert kept[0].row == failures[0].row


@pytest.mark.parametrize(
    "copies",
    [
        DeliveryOutcome(unavailable=[(_msg(0, "orders.dlq"), "_MSG_TIMED_OUT")]),
        DeliveryOutcome(held=[_msg(0, "orders.dlq")]),
        DeliveryOutcome(),  # no report about the copy at all
    ],
)
def test_an_unacknowledged_copy_keeps_the_row_retryable(copies: DeliveryOutcome) -> None:
    """No failed row may go missing from the dead-letter topic: without an ack the row is retried."""
    failures, held = [_terminal(1, "too large")], set()
    kept = _after(failures, copies, held)
    assert len(kept) == 1
    assert kept[0].terminal is False
    assert held == {failures[0].row.key}  # a retry holds back the newer rows of its key
    assert kept[0].error == "too large; dead-letter copy not acknowledged"
    assert kept[0].delay_seconds == 40.0


def test_non_terminal_failures_pass_through_and_refs_index_the_terminal_ones() -> None:
    """Copies are numbered within the terminal failures only; retryable failures are untouched."""
    retryable = Failure(_row(1), "retry me", False, 10.0)
    failures = [retryable, _terminal(2, "e2"), _terminal(3, "e3"), _terminal(4, "e4")]
    copies = DeliveryOutcome(
        acked=[_msg(1, "orders.dlq")],
        rejected=[(_msg(2, "orders.dlq"), "bad")],
        unavailable=[(_msg(0, "orders.dlq"), "down")],
    )
    kept = _after(failures, copies)
    assert kept[0] is retryable
    assert [(f.row.row_id, f.terminal, f.error) for f in kept[1:]] == [
        (2, False, "e2; dead-letter copy not acknowledged"),
        (3, True, "e3"),
        (4, True, "e4; dead-letter copy rejected: bad"),
    ]


# --- the relay's dead-letter step (fake publisher, no database) ----------------------------


class ScriptedPublisher:
    """Answers each publish() call with the next scripted outcome built from the messages it got."""

    flush_timeout_seconds = 1.0

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[list[OutboundMessage]] = []

    def publish(self, messages: Sequence[OutboundMessage]) -> DeliveryOutcome:
        self.calls.append(list(messages))
        outcome: DeliveryOutcome = self.answers.pop(0)(list(messages))
        return outcome


def _relay_with_dead_letter(publisher: ScriptedPublisher) -> OutboxRelay:
    config = ServiceConfig.model_validate(
        {
            "service": "orders",
            "topic": "orders.events",
            "dead_letter_topic": "orders.dlq",
            "retry": {"max_attempts": 3},
        }
    )
    return OutboxRelay(config, engine=None, publisher=publisher)  # type: ignore[arg-type]


def _publish_one_last_attempt(copy_outcome: Any) -> tuple[_Batch, set[Any], RunStats, ScriptedPublisher]:
    publisher = ScriptedPublisher(
        lambda sent: DeliveryOutcome(rejected=[(sent[0], "INVALID_RECORD")]),
        copy_outcome,
    )
    relay = _relay_with_dead_letter(publisher)
    batch = _Batch(conn=None, rows=[_row(1, "k1", attempts=2)])  # type: ignore[arg-type]
    run = RunState(RunRequest("run-1"), RunStats(), started=0.0, budget=100.0)
    held: set[Any] = set()
    relay._publish(batch, run, held)
    return batch, held, run.stats, publisher


def test_relay_fails_a_row_whose_copy_was_acknowledged() -> None:
    """Out of attempts and copied: FAILED, counted as dead-lettered, its key free."""
    batch, held, stats, publisher = _publish_one_last_attempt(lambda copies: DeliveryOutcome(acked=copies))
    assert [m.topic for m in publisher.calls[1]] == ["orders.dlq"]
    assert [(f.terminal, f.error) for f in batch.failures] == [(True, "INVALID_RECORD")]
    assert (stats.dead_lettered, stats.failed, stats.retried) == (1, 1, 0)
    assert held == set()


def test_relay_holds_the_key_of_a_row_whose_copy_was_not_acknowledged() -> None:
    """A row kept retryable because its copy got no ack waits for its retry like any retryable row, so
    the newer rows of its key in the run's later batches must wait too (README: per-key order).

    Fails today: after_dead_letter turns the failure back into a retry after failures_from decided the
    held keys, and OutboxRelay._dead_letter never adds the key, so a newer row of the key claimed in a
    later batch of the same run is published before this older row."""
    batch, held, stats, _publisher = _publish_one_last_attempt(
        lambda copies: DeliveryOutcome(unavailable=[(copies[0], "_MSG_TIMED_OUT")])
    )
    assert [(f.terminal, f.error) for f in batch.failures] == [
        (False, "INVALID_RECORD; dead-letter copy not acknowledged")
    ]
    assert (stats.dead_lettered, stats.failed, stats.retried) == (0, 0, 1)
    assert held == {"k1"}
