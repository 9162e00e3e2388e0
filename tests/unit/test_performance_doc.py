"""docs/performance.md shows the newest benchmark run and bench-results/history.json keeps every earlier one:
the page's table must say what the newest record says, so it cannot drift from the figures it quotes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "performance.md").read_text()
HISTORY = ROOT / "bench-results" / "history.json"
LATEST = ROOT / "bench-results" / "latest.json"
KINDS = {"bench", "ad-hoc", "issue"}


def history() -> list[dict[str, Any]]:
    records = json.loads(HISTORY.read_text())
    assert isinstance(records, list) and records
    return records


def current_table() -> list[dict[str, Any]]:
    """The rows of the table under '## Current figures', as the benchmark's JSON spells them."""
    section = PAGE.split("## Current figures", 1)[1].split("\n## ", 1)[0]
    lines = [ln for ln in section.splitlines() if ln.startswith("|")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["component", "batch", "median", "unit", "target", "ratio", "verdict"]
    rows = []
    for line in lines[2:]:
        cells = dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        rows.append(
            {
                "name": cells["component"],
                "batch": int(cells["batch"]) if cells["batch"] else None,
                "value": float(cells["median"].replace(",", "")),
                "unit": cells["unit"],
                "target": cells["target"],
                "ratio": float(cells["ratio"]) if cells["ratio"] else None,
                "verdict": cells["verdict"],
            }
        )
    return rows


def _comparable(figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    keys = ("name", "batch", "value", "unit", "target", "ratio", "verdict")
    return [{k: f.get(k) for k in keys} for f in figures]


def test_the_history_parses_and_every_record_has_its_fields() -> None:
    dates = []
    for record in history():
        assert {"date", "commit", "kind", "command", "title", "figures", "notes"} <= record.keys(), record
        assert record["kind"] in KINDS
        assert record["date"] is None or re.fullmatch(r"\d{4}-\d{2}-\d{2}", record["date"])
        assert record["figures"], record["title"]
        for figure in record["figures"]:
            assert {"name", "value", "unit"} <= figure.keys(), (record["title"], figure)
        dates += [record["date"]] if record["date"] else []
    assert dates == sorted(dates), "records go oldest first"


def test_the_current_table_is_the_newest_record() -> None:
    newest = history()[-1]
    assert current_table() == _comparable(newest["figures"]), (
        "docs/performance.md's 'Current figures' table differs from the newest record of bench-results/history.json"
    )
    intro = PAGE.split("## Current figures", 1)[1].split("|", 1)[0]
    assert f"**{newest['date']}**" in intro and f"`{newest['command']}`" in intro
