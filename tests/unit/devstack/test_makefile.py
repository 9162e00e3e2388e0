"""The make targets that run Airflow on PostgreSQL start it themselves: no database runs when a machine
starts, and a target that relied on another target having started it failed after half an hour of
benchmarks (``make bench``'s idle figure: "connection to server at 127.0.0.1, port 5432 failed")."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

MAKEFILE = Path(__file__).resolve().parents[3] / "Makefile"


def _recipes() -> dict[str, list[str]]:
    """target -> its recipe lines (tab-indented lines after ``target: prerequisites``)."""
    recipes: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in MAKEFILE.read_text().splitlines():
        if line.startswith("\t") and current is not None:
            current.append(line.strip())
            continue
        rule = re.match(r"^([A-Za-z0-9_-]+):(?!=)", line)
        current = recipes.setdefault(rule.group(1), []) if rule else None
    return recipes


@pytest.mark.parametrize("target", ["test", "integration", "bench", "bench-backfill"])
def test_a_target_that_runs_airflow_on_postgresql_starts_it(target: str) -> None:
    recipe = _recipes()[target]
    assert any("include/devstack/postgres.sh" in line for line in recipe), f"make {target}: {recipe}"
