"""The Guarantees table of docs/semantics.md from measured figures: ``python -m tests.faults.figures [FILE ...]``.

Every fault test appends its history-checker figures to ``.run/fault-figures.jsonl`` with the broker it
ran on. This prints one row per scenario with, for each broker seen, the newest record's
``lost / dup. published / order viol. / SENT w/o ack / stuck``, so docs/semantics.md quotes runs side by side
instead of hand-copied numbers. Several files (e.g. one run per broker) are read in the order given.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

FIGURES = Path(__file__).resolve().parents[2] / ".run" / "fault-figures.jsonl"
COLUMNS = ("lost", "duplicates_published", "order_violations", "sent_without_ack", "stuck")


def newest_per_scenario(lines: list[str]) -> dict[str, dict[str, dict[str, Any]]]:
    """test -> broker -> its last record; records without a broker label predate the label."""
    newest: dict[str, dict[str, dict[str, Any]]] = {}
    for line in lines:
        if line.strip():
            record = json.loads(line)
            newest.setdefault(record["test"], {})[str(record.get("broker", "unlabelled"))] = record
    return newest


def cell(record: dict[str, Any] | None) -> str:
    if record is None:
        return "not run"
    if "lost" not in record:
        return "(no history)"
    return " / ".join(str(record.get(column, "-")) for column in COLUMNS)


def table(newest: dict[str, dict[str, dict[str, Any]]]) -> str:
    brokers = sorted({broker for per_broker in newest.values() for broker in per_broker})
    header = "| test | rows | " + " | ".join(brokers) + " |"
    rows = [header, "|" + "---|" * (len(brokers) + 2)]
    for test, per_broker in sorted(newest.items()):
        counts = {str(r.get("rows", "-")) for r in per_broker.values()}
        cells = [cell(per_broker.get(broker)) for broker in brokers]
        rows.append(f"| `{test}` | {' or '.join(sorted(counts))} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    sources = [Path(a) for a in argv] or [FIGURES]
    missing = [str(s) for s in sources if not s.exists()]
    if missing:
        print(f"no figures at {missing}: run the fault suite first (pytest tests/faults)", file=sys.stderr)
        return 1
    lines = [line for source in sources for line in source.read_text().splitlines()]
    print(f"cells: {' / '.join(COLUMNS)}")
    print(table(newest_per_scenario(lines)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
