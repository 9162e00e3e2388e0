"""Helpers shared by the two coupon scenarios' tests: example DDL, service YAML, coupon-service runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from sqlalchemy import Engine

from outbox_examples.dbsetup import SQL_DIR, apply_ddl
from outbox_relay.config import ServiceConfig
from outbox_relay.config_loader import parse_service_config
from tests.conftest import ROOT

EXAMPLES = ROOT / "include" / "outbox_examples"


def with_example_tables(engine: Engine, scenario: str) -> None:
    apply_ddl(engine, SQL_DIR / "examples" / f"{scenario}.sql")


def example_config(scenario: str, service: str, topic: str) -> ServiceConfig:
    """The scenario's own service YAML, pointed at the test's unique topic."""
    config = parse_service_config(EXAMPLES / scenario / "services" / f"{service}.yaml")
    return config.model_copy(update={"topic": topic})


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


def demo_figures(stdout: str) -> dict[str, str]:
    """The summary table every demo prints (two-space indented 'name  value' lines)."""
    import re

    return dict(re.findall(r"^  (.+?)\s{2,}(\S+)$", stdout, re.MULTILINE))


def demo_script(scenario: str) -> Path:
    return EXAMPLES / scenario / "demo.sh"
