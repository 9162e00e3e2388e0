"""Test-only DAG folder for the fault suite: the generated outbox DAGs (the real factory), with
Airflow's retry delay cut to 1 s so a retried attempt runs within the test. When
OUTBOX_FAULT_MARKER names a file that does not exist yet, the relay task's attempt dies right after
Kafka acknowledged its second batch, before that batch is marked SENT (first attempt only)."""

import os
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

from outbox_relay.kafka.publisher import DeliveryOutcome, KafkaPublisher, OutboundMessage
from outbox_relay_airflow.dag_factory import build_all

_dags, _errors = build_all()
for _dag in _dags.values():
    for _task in _dag.tasks:
        _task.retries = int(os.environ.get("OUTBOX_FAULT_RETRIES", "2"))
        _task.retry_delay = timedelta(seconds=1)
        _task.retry_exponential_backoff = False
globals().update(_dags)

_MARKER = os.environ.get("OUTBOX_FAULT_MARKER")
_real_publish = KafkaPublisher.publish


def _dies_in_the_first_attempt(self: KafkaPublisher, messages: Sequence[OutboundMessage]) -> DeliveryOutcome:
    outcome = _real_publish(self, messages)
    calls = self.__dict__["_fault_calls"] = self.__dict__.get("_fault_calls", 0) + 1
    if _MARKER and calls == 2 and not Path(_MARKER).exists():
        Path(_MARKER).write_text(str(len(outcome.acked)))
        raise RuntimeError("injected fault: the task attempt dies after Kafka acked batch 2, before SENT")
    return outcome


KafkaPublisher.publish = _dies_in_the_first_attempt  # type: ignore[method-assign]
