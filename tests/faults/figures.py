"""The README's Guarantees table from measured figures: ``python -m tests.faults.figures [FILE]``.

Every fault test appends its history-checker figures to ``.run/fault-figures.jsonl`` with the broker it
ran on; this prints, per scenario and broker, the newest record as a Markdown table row, so the README
quotes runs instead of hand-copied numbers.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tests.faults.conftest import FIGURES

COLUMNS = ("rows", "lost", "duplicates_published", "order_violations", "sent_without_ack", "stuck")


def newest_per_scenario(lines: list[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """(test, broker) -> its last record; records without a broker label predate the label."""
    newest: dict[tuple[str, str], dict[str, Any]] = {}
    for line in lines:
        if line.strip():
            record = json.loads(line)
            newest[(record["test"], str(record.get("broker", "unlabelled")))] = record
    return newest


def table(newest: dict[tuple[str, str], dict[str, Any]]) -> str:
    header = "| test | broker | " + " | ".join(COLUMNS) + " |"
    rows = [header, "|" + "---|" * (len(COLUMNS) + 2)]
    for (test, broker), record in sorted(newest.items()):
        cells = [str(record.get(column, "-")) for column in COLUMNS]
        rows.append(f"| `{test}` | {broker} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    source = Path(argv[0]) if argv else FIGURES
    if not source.exists():
        print(f"no figures at {source}: run the fault suite first (pytest tests/faults)", file=sys.stderr)
        return 1
    print(table(newest_per_scenario(source.read_text().splitlines())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
