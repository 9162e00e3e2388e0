"""Test-only DAG folder for the fault suite: the generated outbox DAGs (the real factory), with
Airflow's retry delay cut to 1 s so a retried attempt runs within the test. When
OUTBOX_FAULT_MARKER names a file that does not exist yet, the relay task's attempt dies right after
Kafka acknowledged its second batch, before that batch is marked SENT (first attempt only): the marker
gets the number of messages Kafka acknowledged in that batch, then the process kills itself with
SIGKILL, as a worker that crashes does (no exception handler, no `finally`, no rollback: only what the
database and the broker already hold survives)."""

import os
import signal
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
# Airflow may import this file more than once in one process (parsing, then running the task): wrap the
# real publish only, or each import would wrap the previous wrapper and one batch would count as several.
_real_publish = getattr(KafkaPublisher, "_unfaulted_publish", KafkaPublisher.publish)
KafkaPublisher._unfaulted_publish = _real_publish  # type: ignore[attr-defined]


def _dies_in_the_first_attempt(self: KafkaPublisher, messages: Sequence[OutboundMessage]) -> DeliveryOutcome:
    outcome = _real_publish(self, messages)
    calls = self.__dict__["_fault_calls"] = self.__dict__.get("_fault_calls", 0) + 1
    if _MARKER and calls == 2 and not Path(_MARKER).exists():
        Path(_MARKER).write_text(str(len(outcome.acked)))
        os.kill(os.getpid(), signal.SIGKILL)  # the attempt dies after Kafka acked batch 2, before SENT
    return outcome


KafkaPublisher.publish = _dies_in_the_first_attempt  # type: ignore[method-assign]
