"""A relay process that claims a batch, produces it, and then hangs before recording anything,
so a test can kill -9 it in the middle of a batch. Run as: python -m tests.integration.crashing_relay URL TOPIC FLAG"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path

from outbox_relay.config import ServiceConfig
from outbox_relay.db import make_engine
from outbox_relay.publisher import DeliveryOutcome, KafkaPublisher, OutboundMessage
from outbox_relay.relay import OutboxRelay, RunRequest
from tests.integration.kafka_tools import producer


class HangAfterAck(KafkaPublisher):
    def __init__(self, flag: Path) -> None:
        super().__init__(producer(), 10)
        self.flag = flag

    def publish(self, messages: Sequence[OutboundMessage]) -> DeliveryOutcome:
        outcome = super().publish(messages)  # the broker has acknowledged the batch ...
        self.flag.write_text(str(len(outcome.acked)))
        time.sleep(600)  # ... and the process dies before the SENT update commits
        return outcome


def main() -> None:
    url, topic, flag = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    config = ServiceConfig.model_validate({"service": "orders", "topic": topic, "batch_size": 50})
    OutboxRelay(config, make_engine(url), HangAfterAck(flag)).run(RunRequest(run_id="doomed"))


if __name__ == "__main__":
    main()
