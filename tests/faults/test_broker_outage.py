"""Scenario 3: the broker goes away in the middle of a run, paused (SIGSTOP) or killed and restarted.

The outage lasts OUTAGE_SECONDS (30 s), far longer than the configured delivery + flush timeouts
(3 s + 4 s), so the run must give up on its own within those bounds and the next run delivers the rest.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import pytest
from sqlalchemy import Engine

from outbox_relay.kafka.publisher import BrokerUnavailableError, DeliveryOutcome, KafkaPublisher
from outbox_relay.kafka.records import OutboundMessage
from outbox_relay.relay.engine import OutboxRelay, RunRequest
from tests.faults.conftest import Broker
from tests.faults.history import check_history
from tests.faults.support import FAST_KAFKA, service
from tests.integration.kafka_tools import create_topics, producer
from tests.integration.outbox_rows import insert_rows, run_relay, statuses

pytestmark = [pytest.mark.integration, pytest.mark.slow]  # each ~45 s: started early

ROWS, BATCH = 200, 40
OUTAGE_SECONDS = 30.0  # as long as the issue asks; the relay gives up after its timeouts either way
# The run must end within the timeouts it was configured with, plus slack for one claim and the purge.
BOUND_SECONDS = FAST_KAFKA["delivery_timeout_ms"] / 1000 + FAST_KAFKA["flush_timeout_seconds"] + 5


class OutageAfterFirstBatch(KafkaPublisher):
    """Takes the broker down right after the first batch was acknowledged, mid-run."""

    def __init__(self, bootstrap: str, flush_timeout: float, outage: Callable[[], None]) -> None:
        super().__init__(producer(bootstrap, **{"message.timeout.ms": 3000}), flush_timeout)
        self.outage = outage
        self.started_at: float | None = None

    def publish(self, messages: Sequence[OutboundMessage]) -> DeliveryOutcome:
        outcome = super().publish(messages)
        if self.started_at is None:
            self.outage()
            self.started_at = time.monotonic()
        return outcome


def _outage_run(
    db_engine: Engine,
    broker: Broker,
    topic: str,
    take_down: Callable[[], None],
    bring_back: Callable[[], None],
    record_figures: Callable[..., None],
) -> None:
    create_topics(topic, bootstrap=broker.bootstrap)
    insert_rows(db_engine, topic, [f"k{i % 7}" for i in range(ROWS)])
    config = service(topic, batch_size=BATCH)
    publisher = OutageAfterFirstBatch(broker.bootstrap, config.kafka.flush_timeout_seconds, take_down)

    with pytest.raises(BrokerUnavailableError, match="Is the broker reachable") as failure:
        OutboxRelay(config, db_engine, publisher).run(RunRequest(run_id="during-outage"))
    assert publisher.started_at is not None
    failed_after = time.monotonic() - publisher.started_at
    assert failed_after < BOUND_SECONDS, failed_after  # bounded by the configured timeouts
    sent_during = sum(1 for s in statuses(db_engine).values() if s == "SENT")
    assert sent_during == BATCH  # only the batch acked before the outage

    time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - publisher.started_at)))
    bring_back()
    before = check_history(db_engine, [topic], broker.bootstrap)
    assert before.sent_without_ack == 0  # everything marked SENT is really on the broker
    assert before.distinct_published >= BATCH  # and what was acked before the outage is still there

    after_stats = run_relay(config, db_engine, run_id="after-outage", bootstrap=broker.bootstrap)
    history = check_history(db_engine, [topic], broker.bootstrap, consume=True)
    record_figures(
        history.figures(),
        run_failed_after_s=round(failed_after, 1),
        outage_s=OUTAGE_SECONDS,
        error=str(failure.value)[:160],
        republished_next_run=after_stats.published,
    )
    # docs/semantics.md (Guarantees): duplicates are bounded by the rows acknowledged (or written) but not
    # yet marked SENT when the fault hit, at most two batches with the default pipelined relay.
    history.assert_converged(max_duplicates=2 * BATCH)


def test_broker_paused_mid_run_fails_the_run_in_bounded_time_and_loses_nothing(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    private_broker: Broker,
    record_figures: Callable[..., None],
) -> None:
    b = private_broker
    _outage_run(db_engine, b, topic_name("paused"), b.pause, b.resume, record_figures)


def test_broker_killed_mid_run_and_restarted_keeps_its_data_and_loses_nothing(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    durable_broker: Broker,
    record_figures: Callable[..., None],
) -> None:
    b = durable_broker
    _outage_run(db_engine, b, topic_name("killed"), b.kill, b.start, record_figures)
