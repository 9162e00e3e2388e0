"""Run a scenario's demo the way `make demo SCENARIO=<name>` does, in its own database, and read back
its summary table (the two-space indented 'name  value' lines every demo ends with)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

from tests.conftest import ROOT


@dataclass(frozen=True)
class DemoRun:
    figures: dict[str, str]
    stdout: str


def run_demo(scenario: str, timeout: float = 600, **env: str) -> DemoRun:
    """``include/devstack/demo.sh <scenario>`` with ``env`` on top; fails the test if the demo fails."""
    environment = {
        **os.environ,
        "DEMO_DB": f"outbox_demo_{scenario}_t{os.getpid()}",
        "DEMO_STATE": str(ROOT / ".run" / f"demo-test-state-{scenario}-{os.getpid()}.json"),
        **env,
    }
    for key in [k for k in environment if k.startswith("AIRFLOW")]:
        del environment[key]  # the demo sets up its own Airflow home
    done = subprocess.run(
        ["bash", "include/devstack/demo.sh", scenario],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return DemoRun(dict(re.findall(r"^  (.+?)\s{2,}(\S+)$", done.stdout, re.MULTILINE)), done.stdout)
