"""Helpers shared by the two coupon scenarios' tests: example DDL, service YAML, coupon-service runs."""

from __future__ import annotations

import json
import subprocess
import sys

from sqlalchemy import Engine, text

from outbox_examples import EXAMPLES_SQL_DIR
from outbox_relay.config import ServiceConfig
from outbox_relay.config.loader import parse_service_config
from outbox_relay.store.ddl import apply_ddl
from outbox_relay.store.naming import quote
from tests.conftest import ROOT
from tests.integration.kafka_tools import Record, read_all
from tests.integration.outbox_rows import run_relay

EXAMPLES = ROOT / "include" / "outbox_examples"


def with_example_tables(engine: Engine, scenario: str) -> None:
    apply_ddl(engine, EXAMPLES_SQL_DIR / f"{scenario}.sql")


def example_config(scenario: str, service: str, topic: str) -> ServiceConfig:
    """The scenario's own service YAML, pointed at the test's unique topic."""
    config = parse_service_config(EXAMPLES / scenario / "services" / f"{service}.yaml")
    return config.model_copy(update={"topic": topic})


def relay_twice(config: ServiceConfig, engine: Engine) -> list[Record]:
    """Relay every NEW row, set them all back to NEW (as if the relay had died after the broker's acks,
    before marking them sent) and relay again: every message is on the topic twice. Returns the topic."""
    first = run_relay(config, engine).published
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE {quote(config.table)} SET {quote(config.columns.status)} = :new"),
            {"new": config.statuses.new},
        )
    assert run_relay(config, engine).published == first
    return read_all(config.topic or "")


def run_module(module: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run a service as a real process (so a SIGKILL is a real crash)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def printed_stats(output: str, prefix: str) -> dict[str, int]:
    line = next(line for line in output.splitlines() if line.startswith(prefix))
    stats: dict[str, int] = json.loads(line[len(prefix) :])
    return stats
