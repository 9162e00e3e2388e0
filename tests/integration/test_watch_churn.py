"""Triggers started and cancelled by the hundred, as a triggerer's restarts do, on the real MariaDB and
Kafka: the process survives, no trigger ends other than cancelled, every trigger lets its clients go, and
the Kafka admin client is opened once and never freed (a confluent-kafka client freed by the garbage
collector on one of librdkafka's threads kills the process: issue 30, item 5)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from tests.conftest import ROOT
from tests.integration.kafka_tools import create_topics, send
from tests.integration.outbox_rows import insert_rows
from tests.stack import airflow_connections

pytestmark = pytest.mark.integration

SERVICES = 10
CYCLES = 60  # about 30 s on two cores


def test_many_triggers_started_and_cancelled_in_one_loop_never_crash_or_leak(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    folder = tmp_path / "services"
    folder.mkdir()
    topics = [topic_name(f"churn{n}") for n in range(SERVICES)]
    create_topics(*topics, *(f"{t}.acks" for t in topics))
    for n, topic in enumerate(topics):
        (folder / f"s{n}.yaml").write_text(
            f"service: s{n}\ntopic: {topic}\nschedule: '@rows'\nconfirmation: {{topic: {topic}.acks}}\n"
            "confirm_schedule: '@messages'\nwatch_seconds: 0.02\nretention: null\n"
        )
    insert_rows(db_engine, topics[0], ["a"])  # rows wait: the relays' triggers yield events
    send(f"{topics[0]}.acks", [(None, b"{}")])  # so does one service's confirmations trigger
    env = {**os.environ, **airflow_connections(db_engine), "PYTHONFAULTHANDLER": "1"}
    done = subprocess.run(
        [sys.executable, "-m", "tests.integration.watch_churn", str(folder), str(SERVICES), str(CYCLES), "1"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=170,
    )  # fmt: skip
    assert done.returncode == 0 and "Fatal Python error" not in done.stderr, (
        f"the driver died ({done.returncode}):\n{done.stderr[-4000:]}"
    )
    counts = json.loads(done.stdout.splitlines()[-1])
    assert counts["cycles"] == CYCLES and not [k for k in counts if k.startswith("ended with")], counts
    assert counts["looks"] > CYCLES * SERVICES and counts["events"] > CYCLES, counts  # it watched, and saw
    assert counts["engine users left"] == 0 and counts["admin users left"] == 0, counts
    assert counts["admin opened"] == 1 and not [k for k in counts if k.startswith("admin freed")], counts
