"""A relay (or retention) run in its own process, with an optional fault, so a test can kill -9 it,
run several at once, or skew its clock. Run as: python -m tests.faults.relay_process SPEC_JSON

SPEC: {"url", "bootstrap", "config": {...ServiceConfig...}, "run_id", "what": "relay"|"cleanup",
       "fault": null|"hang_after_ack"|"hang_in_flush"|"slow_batches"|"die_after_kafka_commit"|
                "stop_before_commit", "flag": path,
       "at_batch": int (die_after_kafka_commit, stop_before_commit),
       "clock_offset_seconds": float}
Prints the run's stats as JSON on stdout.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HANG_SECONDS = 600


def skew_clock(offset: float) -> None:
    """Move this process's wall clock (time.time and datetime.now/utcnow) by ``offset`` seconds."""
    real_time, real_ns = time.time, time.time_ns
    time.time = lambda: real_time() + offset  # type: ignore[assignment]
    time.time_ns = lambda: real_ns() + int(offset * 1e9)  # type: ignore[assignment]
    real_datetime = _dt.datetime

    class SkewedDatetime(real_datetime):  # type: ignore[valid-type,misc]
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return real_datetime.now(tz) + _dt.timedelta(seconds=offset)

        @classmethod
        def utcnow(cls) -> Any:
            return real_datetime.now(_dt.UTC).replace(tzinfo=None) + _dt.timedelta(seconds=offset)

    _dt.datetime = SkewedDatetime  # type: ignore[misc]


def _publisher(spec: dict[str, Any], config: Any) -> Any:
    from outbox_relay.kafka.publisher import DeliveryOutcome, KafkaPublisher
    from outbox_relay.kafka.records import OutboundMessage
    from tests.integration.kafka_tools import producer

    flag = Path(spec.get("flag") or "/dev/null")
    fault = spec.get("fault")
    client = producer(spec["bootstrap"], **{"message.timeout.ms": config.kafka.delivery_timeout_ms})

    class FaultyPublisher(KafkaPublisher):
        batches = 0

        def publish(self, messages: Sequence[OutboundMessage]) -> DeliveryOutcome:
            if fault == "slow_batches":
                time.sleep(0.1)
            outcome = super().publish(messages)
            self.batches += 1
            if fault == "hang_after_ack":  # the broker acknowledged; the SENT update never commits
                flag.write_text(str(len(outcome.acked)))
                time.sleep(HANG_SECONDS)
            if fault == "slow_batches":
                flag.write_text(str(self.batches))
                time.sleep(0.1)
            return outcome

    class HangingFlush:
        """Produces normally; flush() hangs, so the process dies while deliveries are in flight."""

        def __getattr__(self, name: str) -> Any:
            return getattr(client, name)

        def flush(self, timeout: float = -1) -> int:
            flag.write_text("flushing")
            time.sleep(HANG_SECONDS)
            return 0

    chosen = HangingFlush() if fault == "hang_in_flush" else client
    return FaultyPublisher(chosen, config.kafka.flush_timeout_seconds)


def _relay(spec: dict[str, Any], config: Any, engine: Any, shard: int | None) -> Any:
    """The relay of one shard's run: at-least-once with the fault in its publisher; exactly once with the
    fault around the batch's transactions: ``die_after_kafka_commit`` kills this process with SIGKILL once
    batch ``at_batch`` is committed in Kafka and its SENT update is written, uncommitted;
    ``stop_before_commit`` stops it (SIGSTOP) with batch ``at_batch``'s Kafka transaction open."""
    from outbox_relay.kafka.transactions import TransactionalPublisher
    from outbox_relay.relay.engine import OutboxRelay
    from outbox_relay.relay.exactly_once import ExactlyOnce
    from tests.integration.outbox_rows import make_relay

    if config.delivery != "exactly_once":
        return OutboxRelay(config, engine, _publisher(spec, config))
    flag, fault = Path(spec.get("flag") or "/dev/null"), spec.get("fault")
    record, recorded = ExactlyOnce.record, ExactlyOnce.recorded

    def record_or_die(self: ExactlyOnce, conn: Any, seq: int) -> None:
        record(self, conn, seq)
        if fault == "die_after_kafka_commit" and seq == spec.get("at_batch", 1):
            flag.write_text(str(seq))
            os.kill(os.getpid(), signal.SIGKILL)

    def recorded_slowly(self: ExactlyOnce, seq: int) -> None:
        recorded(self, seq)
        if fault == "slow_batches":
            flag.write_text(str(seq))
            time.sleep(0.1)

    commit = TransactionalPublisher._commit

    def commit_after_a_stop(self: TransactionalPublisher) -> str | None:
        batches = int(flag.read_text() or 0) + 1 if flag.exists() else 1
        flag.write_text(str(batches))
        if fault == "stop_before_commit" and batches == spec.get("at_batch", 1):
            os.kill(os.getpid(), signal.SIGSTOP)  # a zombie: frozen inside an open transaction
        return commit(self)

    TransactionalPublisher._commit = commit_after_a_stop  # type: ignore[method-assign]
    ExactlyOnce.record = record_or_die  # type: ignore[method-assign]
    ExactlyOnce.recorded = recorded_slowly  # type: ignore[method-assign]
    return make_relay(config, engine, spec["bootstrap"], shard)


def main() -> None:
    spec = json.loads(sys.argv[1])
    if spec.get("clock_offset_seconds"):
        skew_clock(float(spec["clock_offset_seconds"]))
    from outbox_relay.config import ServiceConfig
    from outbox_relay.database import make_engine
    from outbox_relay.relay.engine import RunRequest
    from outbox_relay.retention import RetentionCleaner

    config = ServiceConfig.model_validate(spec["config"])
    engine = make_engine(spec["url"])
    if spec.get("what") == "cleanup":
        stats: Any = RetentionCleaner(config, engine).run(60)
    else:  # one after the other, as a worker runs the mapped relay tasks it is given
        runs = [
            _relay(spec, config, engine, s).run(RunRequest(run_id=spec.get("run_id", "proc"), shard=s))
            for s in spec.get("shards", [None])
        ]
        stats = runs[0]
        if len(runs) > 1:
            print(json.dumps({"per_shard": [r.as_dict() for r in runs], "published": sum(r.published for r in runs),
                              "host_time": time.time()}))  # fmt: skip
            return
    print(json.dumps({**stats.as_dict(), "host_time": time.time()}))


if __name__ == "__main__":
    main()
