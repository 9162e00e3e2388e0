"""Helpers shared by the two coupon scenarios' tests: example DDL, service YAML, coupon-service runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from sqlalchemy import Engine, text

from outbox_examples.dbsetup import SQL_DIR, apply_ddl
from outbox_relay.config import ServiceConfig
from outbox_relay.config_loader import parse_service_config
from outbox_relay.identifiers import quote
from tests.conftest import ROOT
from tests.integration.kafka_tools import Record, read_all
from tests.integration.outbox_rows import run_relay

EXAMPLES = ROOT / "include" / "outbox_examples"


def with_example_tables(engine: Engine, scenario: str) -> None:
    apply_ddl(engine, SQL_DIR / "examples" / f"{scenario}.sql")


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


def run_demo(scenario: str, **env: str) -> dict[str, str]:
    """Run the scenario's demo.sh (as `make demo SCENARIO=<scenario>` does) in its own database and
    return its summary table (two-space indented 'name  value' lines)."""
    environment = {
        **os.environ,
        **env,
        "DEMO_DB": f"outbox_demo_{scenario}_t{os.getpid()}",
        "DEMO_STATE": str(ROOT / ".run" / f"demo-test-state-{scenario}.json"),
    }
    for key in [k for k in environment if k.startswith("AIRFLOW")]:
        del environment[key]  # the demo sets up its own Airflow home
    done = subprocess.run(
        ["bash", str(EXAMPLES / scenario / "demo.sh")],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return dict(re.findall(r"^  (.+?)\s{2,}(\S+)$", done.stdout, re.MULTILINE))
