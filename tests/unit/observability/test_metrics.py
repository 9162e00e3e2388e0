"""Which metrics a run's statistics and a health check's figures become; names are those of docs/operating.md."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from outbox_relay.metrics import (
    CATALOGUE,
    Metric,
    cleanup_metrics,
    confirmation_metrics,
    gauges,
    metric_name,
    relay_metrics,
)

OPERATING = Path(__file__).resolve().parents[3] / "docs" / "operating.md"


def test_a_relay_runs_counters_are_sent_even_when_zero_and_its_timings_in_ms() -> None:
    stats = {"published": 7, "republished": 0, "failed": 1, "dead_lettered": 1, "retried": 2, "held_back": 3,
             "recovered": 4, "batches": 2, "elapsed_seconds": 1.5, "publish_seconds": 0.4,
             "slowest_publish_seconds": 0.3}  # fmt: skip
    found = {m.name: m for m in relay_metrics(stats)}
    assert {n: m.value for n, m in found.items() if m.kind == "counter"} == {
        "published": 7, "republished": 0, "failed": 1, "dead_lettered": 1, "retried": 2, "held_back": 3,
        "recovered": 4,
    }  # fmt: skip
    assert found["relay_run"] == Metric("timing", "relay_run", 1500.0)
    assert found["batch_publish"].value == pytest.approx(200.0)  # the average batch
    assert found["batch_publish_max"].value == pytest.approx(300.0)


def test_a_run_without_batches_has_no_batch_timings_and_odd_values_count_as_zero() -> None:
    names = {m.name: m.value for m in relay_metrics({"published": None, "failed": True, "batches": 0})}
    assert "batch_publish" not in names and names["published"] == 0 and names["failed"] == 0


def test_confirmations_cleanup_and_gauges() -> None:
    confirmed = {m.name: m.value for m in confirmation_metrics({"confirmed": 5, "failed": 2, "malformed": 1})}
    assert confirmed == {"confirmed": 5, "confirmation_failed": 2, "confirmation_malformed": 1}
    assert cleanup_metrics({"deleted_terminal": 10, "deleted_failed": 2}) == [
        Metric("counter", "deleted", 12)
    ]
    assert gauges({"backlog": 3, "oldest_new_age_seconds": None}) == [Metric("gauge", "backlog", 3)]


def test_names_are_per_service_and_unknown_ones_are_refused() -> None:
    assert metric_name("billing", "published") == "outbox_relay.billing.published"
    with pytest.raises(KeyError, match="unknown metric 'publishd'"):
        metric_name("billing", "publishd")


def test_the_docs_document_every_metric_with_its_kind() -> None:
    documented = dict(
        re.findall(r"^\| `outbox_relay\.<service>\.(\w+)` \| (\w+) \|", OPERATING.read_text(), re.M)
    )
    assert documented == {name: kind for name, (kind, _) in CATALOGUE.items()}
