"""The coupon service process: receive USER_* events into EventProcess, then process them.

Usage: python -m outbox_examples.user_coupon.coupon_service [--die-after-record] [--topic T] [--group G]

Per batch: record every event as NEW (one transaction, deduped on the event id), commit that, then
commit the Kafka offsets, then process NEW rows. On start it first processes NEW rows left by a crash.
``--die-after-record`` SIGKILLs the process right after the first batch is recorded (before offsets are
committed and before processing): the crash the write-up worries about, used by the demo and the test.

Why not ``outbox_inbox.consumer.IdempotentConsumer``: it runs the business effect inside the receive
transaction and dedupes in its own inbox table, while this scheme's point is that EventProcess is the
inbox and processing is a separate, later step; and the user service's EventPublish table has no
CONFIRMED/FAILED states for a result topic to report into.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine

from outbox_examples.demo_support import db_url
from outbox_examples.kafka_groups import group_consumer
from outbox_examples.user_coupon.services import (
    USER_TOPIC,
    ProcessStats,
    ReceivedEvent,
    process_pending,
    record_event,
)
from outbox_inbox.consumer import to_inbound
from outbox_relay.database import make_engine
from outbox_relay.kafka.consume import ConsumeLoop, commit_offsets
from outbox_relay.kafka.records import HEADER_EVENT_TYPE
from outbox_relay.models import StatsMixin

log = logging.getLogger(__name__)


@dataclass
class CouponServiceStats(StatsMixin):
    received: int = 0
    recorded: int = 0
    duplicates: int = 0
    malformed: int = 0
    processed: int = 0
    failed: int = 0


class CouponService:
    """One coupon-service process: receiver + processor over EventProcess."""

    def __init__(
        self,
        engine: Engine,
        consumer: Any,
        die_after_record: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.consumer = consumer
        self.die_after_record = die_after_record
        self.clock = clock

    def run(self, time_budget_seconds: float, idle_seconds: float = 3.0) -> CouponServiceStats:
        stats = CouponServiceStats()
        self._process(stats)  # whatever a crashed predecessor recorded but did not process
        loop = ConsumeLoop(
            self.consumer,
            time_budget_seconds,
            idle_seconds,
            stop_at_end=False,
            name="coupon service",
            clock=self.clock,
        )
        for messages in loop:
            self._record(messages, stats)
            if self.die_after_record:
                os.kill(os.getpid(), signal.SIGKILL)
            commit_offsets(self.consumer)
            self._process(stats)
        return stats

    def _record(self, messages: list[Any], stats: CouponServiceStats) -> None:
        with self.engine.begin() as conn:
            for raw in messages:
                stats.received += 1
                inbound = to_inbound(raw)
                if inbound is None:
                    stats.malformed += 1
                    log.error(
                        "coupon service: %s[%s]@%s has no message id; skipped",
                        raw.topic(),
                        raw.partition(),
                        raw.offset(),
                    )
                    continue
                event = ReceivedEvent(
                    inbound.message_id,
                    inbound.headers.get(HEADER_EVENT_TYPE, ""),
                    inbound.key,
                    inbound.value.decode("utf-8", "replace"),
                )
                if record_event(conn, event):
                    stats.recorded += 1
                else:
                    stats.duplicates += 1

    def _process(self, stats: CouponServiceStats) -> None:
        result = ProcessStats()
        process_pending(self.engine, result)
        stats.processed += result.processed
        stats.failed += result.failed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m outbox_examples.user_coupon.coupon_service")
    parser.add_argument("--topic", default=USER_TOPIC)
    parser.add_argument("--group", default="coupon-service")
    parser.add_argument("--db-url", default=None, help="default: DEMO_DB on OUTBOX_TEST_DB_URL's server")
    parser.add_argument("--budget", type=float, default=180)
    parser.add_argument("--idle", type=float, default=3)
    parser.add_argument("--die-after-record", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    engine = make_engine(args.db_url or db_url())
    consumer = group_consumer(args.group, args.topic, **{"enable.partition.eof": True})
    stats = CouponService(engine, consumer, args.die_after_record).run(args.budget, args.idle)
    consumer.close()
    engine.dispose()
    print(f"coupon service: {json.dumps(stats.as_dict())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
