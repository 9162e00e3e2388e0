"""What a person reads before approving a replay in Airflow's Required Actions: the figure that matters
first (rows matched, by status and topic, over which creation times), who asked and why, then at most ten
rows, one line each, and a link to the Outbox page filtered to the same rows. Markdown, as the Required
Actions view renders it."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from outbox_relay.config import ServiceConfig

APPROVAL_ROWS = 10
FILTERS = ("key", "event_type", "created_from", "created_until", "row_ids", "message_ids")
# The page's list takes one kind at a time and these filters (row and message ids it does not take).
PAGE_FILTERS = {"key": "key", "event_type": "event_type", "created_from": "since", "created_until": "until"}
OUTCOMES = {
    "failed": "requeued (FAILED -> NEW: the next relay run sends them)",
    "unconfirmed": "published again now (outbox-replay header)",
    "dead_letter": "published from the dead-letter topic to their original topic",
}


def _one_line(text: Any, limit: int = 100) -> str:
    flat = " ".join(str(text or "").split()).replace("|", "/")
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _filter(params: dict[str, Any]) -> str:
    given = [f"{name} {_one_line(params[name], 60)}" for name in FILTERS if params.get(name)]
    kinds = params.get("statuses") or ["failed"]
    return ", ".join([f"statuses {', '.join(kinds) if isinstance(kinds, list) else kinds}", *given])


def page_link(config: ServiceConfig, params: dict[str, Any], kind: str) -> str:
    """The Outbox page's list of the service's rows of ``kind``, filtered as the replay is (as far as the
    page's filters go)."""
    query = {"kind": kind, **{PAGE_FILTERS[n]: params[n] for n in PAGE_FILTERS if params.get(n)}}
    return f"/outbox/services/{config.service}?{urlencode(query)}"


def approval_text(
    config: ServiceConfig, params: dict[str, Any], plan: dict[str, Any], requested_by: str
) -> str:
    """The Required Action's body for a replay run's plan (``ReplayReport.as_dict()`` of its dry run)."""
    matched = int(plan.get("matched") or 0)
    by_kind = plan.get("by_kind") or {}
    kinds = "; ".join(f"{n} {kind}: {OUTCOMES.get(kind, kind)}" for kind, n in sorted(by_kind.items()))
    topics = ", ".join(f"{topic} {n}" for topic, n in sorted((plan.get("by_topic") or {}).items()))
    created = (
        f"{plan['first_created']} to {plan['last_created']}" if plan.get("first_created") else "not recorded"
    )
    held = int(plan.get("held_back") or 0)
    lines = [
        f"**Replay {matched} row(s) of outbox service `{config.service}`** (table `{config.table}`), asked by "
        f"**{requested_by}**.",
        "",
        f"Reason: {_one_line(params.get('reason'), 500)}",
        "",
        "| | |",
        "|---|---|",
        f"| Rows matched | **{matched}**: {kinds or 'none'} |",
        *([f"| Held back | {held} (an older row of their key is not sent yet) |"] if held else []),
        f"| By topic | {topics or 'none'} |",
        f"| Created | {created} |",
        f"| Filter | {_filter(params)} |",
        "",
    ]
    rows = list(plan.get("rows") or [])[:APPROVAL_ROWS]
    if rows:
        lines += [f"The first {len(rows)} of them:", "", "| key | topic | error |", "|---|---|---|"]
        lines += [
            f"| {_one_line(r.get('key'), 40)} | {_one_line(r.get('topic'), 60)} | {_one_line(r.get('last_error'))} |"
            for r in rows
        ]
        lines.append("")
    links = [
        f"[{kind} rows on the Outbox page]({page_link(config, params, kind)})"
        for kind in sorted(by_kind)
        if kind != "dead_letter"
    ]
    if links:
        more = f"{matched - len(rows)} more: " if matched > len(rows) else ""
        lines.append(f"{more}{', '.join(links)} (filtered like this replay).")
    return "\n".join(lines)
