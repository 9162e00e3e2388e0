"""`make demo`'s script end to end: Airflow (`airflow dags test`), the real broker and MariaDB."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.conftest import ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def test_order_inventory_demo_loses_nothing_and_applies_each_order_once() -> None:
    env = {
        **os.environ,
        "DEMO_ORDERS": "300",
        "DEMO_DB": f"outbox_demo_t{os.getpid()}",
        "DEMO_STATE": str(ROOT / ".run" / "demo-test-state.json"),
    }
    for key in [k for k in env if k.startswith("AIRFLOW")]:
        del env[key]  # the demo sets up its own Airflow home
    done = subprocess.run(
        ["bash", "include/devstack/demo.sh"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-4000:]
    figures = dict(re.findall(r"^  (.+?)\s{2,}(\S+)$", done.stdout, re.MULTILINE))
    assert figures["rows written"] == "300"
    assert figures["published (distinct ids on topic)"] == "300"
    assert int(figures["confirmed"]) + int(figures["failed (consumer said FAILED)"]) == 300
    assert figures["orders cancelled"] == figures["failed (consumer said FAILED)"]
    assert figures["lost (must be 0)"] == "0"
    assert figures["duplicate business effects (must be 0)"] == "0"
    assert "relay run" in done.stdout and "'published': 300" in done.stdout
