"""A run counts what the broker acknowledged per topic (first and last row id in claim order) and how long
it waited for acknowledgements: the relay DAG's asset events and metrics are made from these."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from outbox_relay.config import ServiceConfig
from outbox_relay.kafka.publisher import DeliveryOutcome
from outbox_relay.kafka.records import OutboundMessage
from outbox_relay.models import OutboxRow, RunStats
from outbox_relay.relay.engine import OutboxRelay, RunRequest, _Batch
from outbox_relay.relay.run_state import RunState
from tests.unit.relay.test_failures import ScriptedPublisher, _row


def _routed(row_id: int, topic: str) -> OutboxRow:
    row = _row(row_id, key=f"k{row_id}")
    row.topic = topic
    return row


def _publish(rows: list[OutboxRow], answer: Callable[[list[OutboundMessage]], DeliveryOutcome]) -> RunStats:
    config = ServiceConfig.model_validate(
        {"service": "orders", "topic": "orders.a", "topics": ["orders.a", "orders.b"]}
    )
    ticks = iter([10.0, 10.25])
    relay = OutboxRelay(config, engine=None, publisher=ScriptedPublisher(answer), clock=lambda: next(ticks))  # type: ignore[arg-type]
    run = RunState(RunRequest("run-1"), RunStats(), started=0.0, budget=100.0)
    relay._publish(_Batch(conn=None, rows=rows), run, set())  # type: ignore[arg-type]
    return run.stats


def test_one_topic_batch() -> None:
    stats = _publish([_routed(i, "orders.a") for i in (4, 5, 6)], lambda sent: DeliveryOutcome(acked=sent))
    assert stats.topics == {"orders.a": {"rows": 3, "first_row_id": 4, "last_row_id": 6}}
    assert (stats.publish_seconds, stats.slowest_publish_seconds) == (0.25, 0.25)


def test_rows_of_two_topics_and_unacknowledged_rows() -> None:
    rows = [_routed(1, "orders.a"), _routed(2, "orders.b"), _routed(3, "orders.a"), _routed(4, "orders.b")]

    def answer(sent: list[OutboundMessage]) -> DeliveryOutcome:
        return DeliveryOutcome(acked=sent[:3], rejected=[(sent[3], "too large")])

    stats = _publish(rows, answer)
    expected: dict[str, Any] = {
        "orders.a": {"rows": 2, "first_row_id": 1, "last_row_id": 3},
        "orders.b": {"rows": 1, "first_row_id": 2, "last_row_id": 2},
    }
    assert stats.topics == expected and stats.published == 3
