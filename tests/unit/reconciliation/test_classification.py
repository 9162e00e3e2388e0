"""Reconciler._classify: which category each outbox row falls in given the consumers' record of it, and
which rows a re-delivery would reset or mark sent. Pure (no SQL), so every branch is checked here; a
wrong branch would either re-send consumed messages or leave lost ones unreported."""

from __future__ import annotations

from typing import Any

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay.models import ScannedRow
from outbox_relay.reconciliation import (
    CATEGORIES,
    CONSUMER_FAILED,
    MISSING,
    PRODUCER_FAILED,
    UNMARKED,
    Reconciler,
    ReconciliationReport,
)

PENDING, CONSUMED, CONSUMER_FAIL = 0, 1, 2  # the consumers' table's default status values


def _reconciler(max_listed: int = 1000) -> Reconciler:
    config = ServiceConfig.model_validate(
        {
            "service": "orders",
            "topic": "orders.events",
            "reconciliation": {"consumer_table": "consumed_message", "max_listed": max_listed},
        }
    )
    return Reconciler(config, producer=None)  # type: ignore[arg-type]  # builds SQL text only, no I/O


def _row(row_id: int, status: str, settled: bool = True, error: str | None = None) -> ScannedRow:
    return ScannedRow(
        row_id=row_id,
        message_id=f"m{row_id}",
        business_id=f"order-{row_id}",
        topic="orders.events",
        status=status,
        error=error,
        settled=settled,
    )


def _classify(
    rows: list[ScannedRow],
    states: dict[str, tuple[Any, Any]],
    include_failed: bool = False,
    reconciler: Reconciler | None = None,
) -> tuple[ReconciliationReport, dict[str, list[Any]]]:
    report = ReconciliationReport("orders")
    todo = (reconciler or _reconciler())._classify(rows, states, report, include_failed)
    return report, todo


def _nonzero(report: ReconciliationReport) -> dict[str, int]:
    return {name: n for name, n in report.counts.items() if n}


def test_the_constructor_needs_a_reconciliation_section() -> None:
    """A service without the section cannot be reconciled; the error names it."""
    config = ServiceConfig.model_validate({"service": "orders", "topic": "orders.events"})
    with pytest.raises(ValueError, match="no 'reconciliation' section"):
        Reconciler(config, producer=None)  # type: ignore[arg-type]


def test_sent_and_not_consumed_after_the_grace_is_missing_and_reset() -> None:
    """A settled sent row the consumer never recorded was lost: report it and re-deliver it."""
    report, todo = _classify([_row(1, "SENT"), _row(2, "CONFIRMED")], {"m2": (PENDING, None)})
    assert _nonzero(report) == {MISSING: 2}
    assert todo == {"reset": [1, 2], "mark_sent": []}
    assert report.listed[MISSING][0] == {
        "message_id": "m1",
        "row_id": 1,
        "business_id": "order-1",
        "topic": "orders.events",
    }
    assert report.missing == 2 and report.checked == 2


def test_sent_within_the_grace_is_only_in_flight() -> None:
    """A consumer may simply not have got to it yet: counted, never reported or reset."""
    report, todo = _classify([_row(1, "SENT", settled=False)], {})
    assert report.in_flight == 1
    assert _nonzero(report) == {}
    assert todo == {"reset": [], "mark_sent": []}


def test_sent_and_consumed_is_fine() -> None:
    """The normal case: nothing reported, nothing to do."""
    report, todo = _classify(
        [_row(1, "SENT"), _row(2, "CONFIRMED")], {"m1": (CONSUMED, None), "m2": (CONSUMED, None)}
    )
    assert report.consumed == 2
    assert _nonzero(report) == {}
    assert report.in_flight == 0
    assert todo == {"reset": [], "mark_sent": []}


@pytest.mark.parametrize("status", ["NEW", "FAILED"])
def test_consumed_but_not_marked_sent_is_unmarked(status: str) -> None:
    """The consumer's record proves delivery: mark the row sent instead of publishing it again."""
    report, todo = _classify([_row(5, status)], {"m5": (CONSUMED, None)}, include_failed=True)
    assert _nonzero(report) == {UNMARKED: 1}
    assert todo == {"reset": [], "mark_sent": [5]}
    assert report.consumed == 1
    assert report.missing == 1


def test_a_consumer_failure_is_reported_with_its_error() -> None:
    """The consumer's error text is what on-call needs; a sent row it failed on is not re-sent."""
    report, todo = _classify([_row(3, "SENT")], {"m3": (CONSUMER_FAIL, "no such customer")})
    assert _nonzero(report) == {CONSUMER_FAILED: 1}
    assert report.listed[CONSUMER_FAILED] == [
        {
            "message_id": "m3",
            "row_id": 3,
            "business_id": "order-3",
            "topic": "orders.events",
            "error": "no such customer",
        }
    ]
    assert report.consumed == 0
    assert todo == {"reset": [], "mark_sent": []}


def test_a_consumer_failure_without_text_says_so() -> None:
    """An empty error column must still produce a readable line."""
    report, _todo = _classify([_row(3, "SENT")], {"m3": (CONSUMER_FAIL, None)})
    assert report.listed[CONSUMER_FAILED][0]["error"] == "consumer recorded a failure without text"


def test_a_consumer_failure_on_a_new_row_also_proves_delivery() -> None:
    """The consumer handled the message (and failed): the row is marked sent, and both are reported."""
    report, todo = _classify([_row(4, "NEW")], {"m4": (CONSUMER_FAIL, "bad data")})
    assert _nonzero(report) == {CONSUMER_FAILED: 1, UNMARKED: 1}
    assert todo == {"reset": [], "mark_sent": [4]}


def test_a_relay_failure_is_reported_and_reset_only_when_asked() -> None:
    """A row the relay gave up on is listed with its error; re-sending it is the operator's call."""
    rows = [_row(7, "FAILED", error="payload is not valid JSON"), _row(8, "FAILED")]
    report, todo = _classify(rows, {})
    assert _nonzero(report) == {PRODUCER_FAILED: 2}
    assert [item["error"] for item in report.listed[PRODUCER_FAILED]] == [
        "payload is not valid JSON",
        "no error recorded",
    ]
    assert report.failures == 2 and report.missing == 0
    assert todo == {"reset": [], "mark_sent": []}

    report, todo = _classify(rows, {}, include_failed=True)
    assert todo == {"reset": [7, 8], "mark_sent": []}
    assert report.counts[PRODUCER_FAILED] == 2


def test_new_and_unhandled_is_only_unsent() -> None:
    """Not published yet is the relay's backlog, not a discrepancy."""
    report, todo = _classify([_row(9, "NEW"), _row(10, "NEW", settled=False)], {"m9": (PENDING, None)})
    assert report.unsent == 2
    assert _nonzero(report) == {}
    assert todo == {"reset": [], "mark_sent": []}


def test_max_listed_caps_the_examples_but_not_the_counts() -> None:
    """A big outage must not produce a huge report, yet the counts stay exact."""
    reconciler = _reconciler(max_listed=2)
    rows = [_row(n, "SENT") for n in range(1, 6)]
    report, todo = _classify(rows, {}, reconciler=reconciler)
    assert report.counts[MISSING] == 5
    assert [item["row_id"] for item in report.listed[MISSING]] == [1, 2]
    assert todo["reset"] == [1, 2, 3, 4, 5]


def test_counts_accumulate_over_chunks() -> None:
    """run() classifies chunk after chunk into one report; the listing cap holds across chunks."""
    reconciler = _reconciler(max_listed=3)
    report = ReconciliationReport("orders")
    reconciler._classify([_row(1, "SENT"), _row(2, "SENT")], {}, report, False)
    todo = reconciler._classify([_row(3, "SENT"), _row(4, "SENT"), _row(5, "NEW")], {}, report, False)
    assert report.checked == 5
    assert report.counts[MISSING] == 4
    assert len(report.listed[MISSING]) == 3
    assert report.unsent == 1
    assert todo["reset"] == [3, 4]


def test_every_category_in_one_scan() -> None:
    """One mixed chunk: each row lands in exactly its category and the summary names them all."""
    rows = [
        _row(1, "SENT"),
        _row(2, "SENT", settled=False),
        _row(3, "NEW"),
        _row(4, "NEW"),
        _row(5, "SENT"),
        _row(6, "FAILED", error="too large"),
        _row(7, "CONFIRMED"),
    ]
    states = {"m3": (CONSUMED, None), "m5": (CONSUMER_FAIL, "boom"), "m7": (CONSUMED, None)}
    report, todo = _classify(rows, states)
    assert report.counts == {MISSING: 1, UNMARKED: 1, CONSUMER_FAILED: 1, PRODUCER_FAILED: 1}
    assert set(report.counts) == set(CATEGORIES)
    assert (report.checked, report.consumed, report.unsent, report.in_flight) == (7, 2, 1, 1)
    assert todo == {"reset": [1], "mark_sent": [3]}
    summary = report.summary()
    assert all(f"{name} 1" in summary for name in CATEGORIES)
