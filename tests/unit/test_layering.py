"""The relay core must stay usable without Airflow: nothing in include/outbox_relay imports it."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "include" / "outbox_relay"


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_has_no_airflow_imports() -> None:
    files = sorted(CORE.glob("*.py"))
    assert len(files) >= 10
    offenders = {f.name: m for f in files for m in _imported_modules(f) if m.split(".")[0] == "airflow"}
    assert offenders == {}


def test_dag_files_are_thin() -> None:
    for dag_file in (CORE.parents[1] / "dags").glob("*.py"):
        imported = _imported_modules(dag_file)
        # DAG files only call into the plugin layer (dag_factory or a scenario's DAG builder there).
        assert all(m.startswith("outbox_relay_airflow.") for m in imported), (dag_file.name, imported)
