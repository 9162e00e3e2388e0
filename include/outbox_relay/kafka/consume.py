"""One consume loop for every reader of a topic: batches until caught up, idle, or out of time.

The confirmation ingester, the inbox consumer and the examples' services all read the same way, so the
stop rules (end of every assigned partition, silence once assigned, time budget), the treatment of
consumer errors and the commit after the database write live here once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from outbox_relay.errors import InfrastructureError

log = logging.getLogger(__name__)


class ConsumerLike(Protocol):
    def consume(self, num_messages: int = ..., timeout: float = ...) -> list[Any]: ...
    def commit(self, *args: Any, **kwargs: Any) -> Any: ...
    def assignment(self) -> list[Any]: ...


class ConsumerFailedError(InfrastructureError):
    """librdkafka reported a fatal error: this consumer instance cannot go on."""


def commit_offsets(consumer: ConsumerLike) -> None:
    """Commit the consumed offsets synchronously; 'nothing to commit' (all consumed were errors/EOF) is fine."""
    try:
        consumer.commit(asynchronous=False)
    except KafkaException as exc:
        if exc.args[0].code() != KafkaError._NO_OFFSET:
            raise


class ConsumeLoop:
    """Yields lists of data messages; ``stopped_because`` says why iteration ended.

    ``stop_at_end``: stop once every assigned partition reported end-of-partition (needs the consumer's
    ``enable.partition.eof``); otherwise only silence or the budget stop it (a reader that expects more
    messages to arrive while it runs)."""

    def __init__(
        self,
        consumer: ConsumerLike,
        time_budget_seconds: float,
        idle_seconds: float,
        batch_size: int = 500,
        stop_at_end: bool = True,
        name: str = "consumer",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.consumer = consumer
        self.budget = time_budget_seconds
        self.idle = idle_seconds
        self.batch_size = batch_size
        self.stop_at_end = stop_at_end
        self.name = name
        self.clock = clock
        self.stopped_because = "caught up"
        self._at_end: dict[tuple[str, int], bool] = {}

    def __iter__(self) -> Iterator[list[Any]]:
        started = last_activity = self.clock()
        while not self._should_stop(started, last_activity):
            assigned = bool(self.consumer.assignment())
            messages = self._data(self.consumer.consume(self.batch_size, timeout=0.5))
            if not assigned or messages:  # still joining the group counts as activity
                last_activity = self.clock()
            if messages:
                yield messages

    def _should_stop(self, started: float, last_activity: float) -> bool:
        now = self.clock()
        if now - started >= self.budget:
            self.stopped_because = "time budget spent"
            return True
        assigned = {(tp.topic, tp.partition) for tp in self.consumer.assignment()}
        if self.stop_at_end and assigned and all(self._at_end.get(tp) for tp in assigned):
            self.stopped_because = "caught up"
            return True
        if assigned and now - last_activity >= self.idle:
            self.stopped_because = f"no messages for {self.idle:g}s"
            return True
        return False

    def _data(self, messages: list[Any]) -> list[Any]:
        data = []
        for message in messages:
            err = message.error()
            where = (message.topic(), message.partition())
            if err is None:
                self._at_end[where] = False
                data.append(message)
            elif err.code() == KafkaError._PARTITION_EOF:
                self._at_end[where] = True
            elif err.fatal():
                raise ConsumerFailedError(f"{self.name}: Kafka consumer failed: {err.name()}: {err.str()}")
            else:
                log.warning("%s: consumer error: %s", self.name, err.str())
        return data
