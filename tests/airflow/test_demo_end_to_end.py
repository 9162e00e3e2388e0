"""`make demo`'s script end to end: Airflow (`airflow dags test`), the real broker and MariaDB."""

from __future__ import annotations

import os

import pytest

from tests.examples.demo_runner import run_demo

# Uses the demo's topics and consumer groups, as `make airflow` does: never beside that test.
pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.xdist_group("order_topics")]


@pytest.mark.slow
def test_order_inventory_demo_loses_nothing_and_applies_each_order_once() -> None:
    demo = run_demo("order_inventory", DEMO_ORDERS="300", DEMO_DB=f"outbox_demo_t{os.getpid()}")
    figures = demo.figures
    assert figures["rows written"] == "300"
    assert figures["published (distinct ids on topic)"] == "300"
    assert int(figures["confirmed"]) + int(figures["failed (consumer said FAILED)"]) == 300
    assert figures["orders cancelled"] == figures["failed (consumer said FAILED)"]
    assert figures["lost (must be 0)"] == "0"
    assert figures["duplicate business effects (must be 0)"] == "0"
    assert "relay run" in demo.stdout and "'published': 300" in demo.stdout
