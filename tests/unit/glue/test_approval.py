"""A replay's Required Action reads as a summary: the matched count first, then who and why, at most ten
rows one line each, and a link to the same rows on the Outbox page (a 150-row replay used to show 5,318
characters of a raw dict, `matched: 150` last)."""

from __future__ import annotations

from outbox_relay.config import ServiceConfig
from outbox_relay_airflow.approval import APPROVAL_ROWS, approval_text


def _plan(rows: int) -> dict[str, object]:
    shown = [
        {
            "row_id": n,
            "message_id": f"m{n}",
            "kind": "failed",
            "key": f"customer-{n}",
            "topic": "orders.events",
            "last_error": f"InsufficientStock: sku-{n}\n  at line 3 | of the handler",
        }
        for n in range(20)
    ]
    return {
        "matched": rows,
        "held_back": 0,
        "rows": shown,
        "by_kind": {"failed": rows},
        "by_topic": {"orders.events": rows},
        "first_created": "2026-11-20 06:00:01",
        "last_created": "2026-11-20 07:59:58",
    }


def test_a_large_replay_opens_with_its_figures_and_shows_ten_rows() -> None:
    config = ServiceConfig.model_validate({"service": "orders", "topic": "orders.events"})
    params = {
        "reason": "inventory fixed",
        "statuses": ["failed"],
        "key": None,
        "created_from": "2026-11-20T06:00",
    }
    body = approval_text(config, params, _plan(150), "alice")
    first, *rest = body.splitlines()
    assert (
        first
        == "**Replay 150 row(s) of outbox service `orders`** (table `outbox_message`), asked by **alice**."
    )
    assert "Reason: inventory fixed" in rest
    assert (
        "| Rows matched | **150**: 150 failed: requeued (FAILED -> NEW: the next relay run sends them) |"
        in rest
    )
    assert (
        "| By topic | orders.events 150 |" in rest
        and "| Created | 2026-11-20 06:00:01 to 2026-11-20 07:59:58 |" in rest
    )
    assert "| Filter | statuses failed, created_from 2026-11-20T06:00 |" in rest
    row_lines = [line for line in rest if line.startswith("| customer-")]
    assert len(row_lines) == APPROVAL_ROWS == 10
    assert (
        row_lines[0] == "| customer-0 | orders.events | InsufficientStock: sku-0 at line 3 / of the handler |"
    )
    assert rest[-1] == (
        "140 more: [failed rows on the Outbox page](/outbox/services/orders?kind=failed&since=2026-11-20T06%3A00) "
        "(filtered like this replay)."
    )
    assert len(body) < 2000
