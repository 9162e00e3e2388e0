"""`make demo SCENARIO=generic_message` end to end: Airflow (`airflow dags test`), the real broker and MariaDB."""

from __future__ import annotations

import pytest

from tests.conftest import ROOT
from tests.examples.demo_runner import run_demo

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


@pytest.mark.slow
def test_generic_message_demo_finds_and_redelivers_what_was_lost_without_duplicate_effects() -> None:
    demo = run_demo(
        "generic_message",
        timeout=900,
        DEMO_ORDERS="25",
        DEMO_AIRFLOW_HOME=str(ROOT / ".run" / "airflow-demo-test-generic_message"),
    )
    figures = demo.figures
    assert figures["rows written"] == "79"  # 25 invoices x 3 messages + 4 rows with their own partition
    assert figures["published (distinct ids on topic)"] == "78"  # all but the partition-99 row
    assert figures["messages on topic for these rows"] == str(78 * 2 + 3)  # twice each, + 3 re-delivered
    assert figures["consumer failed (status 2, with error)"] == "1"  # invoice 25 has a negative amount
    assert figures["consumed OK (consumer status 1)"] == "77"
    assert figures["producer FAILED (retry flag 0)"] == "1"
    assert figures["re-delivered by reconciliation"] == "3"
    assert figures["lost (must be 0)"] == "0"
    assert figures["duplicate business effects (must be 0)"] == "0"
    assert "sent_not_consumed 3, consumed_not_marked_sent 2" in demo.stdout
    assert "redelivered 3, marked sent 2" in demo.stdout
    assert "reconciliation: {'sent_not_consumed': 0, 'consumed_not_marked_sent': 0" in demo.stdout
    assert "OK      billing" in demo.stdout and "OK      shipping" in demo.stdout
