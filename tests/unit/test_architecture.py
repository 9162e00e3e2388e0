"""The layout's rules, checked on every run: import contracts (pyproject's [tool.importlinter]), SQL only
in the store, thin DAG files, no product module over 450 lines."""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [
    ROOT / "include" / "outbox_relay",
    ROOT / "include" / "outbox_inbox",
    ROOT / "plugins" / "outbox_relay_airflow",
]
STORE = ROOT / "include" / "outbox_relay" / "store"
# Statements as written in this code base: upper-case keywords.
SQL_STATEMENT = re.compile(
    r"^\s*(SELECT\s|INSERT INTO\s|UPDATE\s|DELETE FROM\s|REPLACE INTO\s|CREATE\s|ALTER TABLE\s|DROP\s|DO [A-Z_]+\()"
)
SQL_BUILDERS = {"text", "bindparam", "literal_column", "select", "insert", "update", "delete"}


def _product_files() -> list[Path]:
    return sorted(p for package in PRODUCT for p in package.rglob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_import_contracts_are_kept() -> None:
    """Core never imports Airflow, nothing imports the examples, the core's layers point one way, the glue
    and the inbox library reach the store only through the core."""
    env = {**os.environ, "PYTHONPATH": f"{ROOT / 'include'}{os.pathsep}{ROOT / 'plugins'}"}
    lint = Path(sys.executable).with_name("lint-imports")
    done = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "6 kept, 0 broken" in done.stdout, done.stdout


def test_only_the_store_holds_sql() -> None:
    offenders = []
    for path in _product_files():
        if STORE in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sqlalchemy"):
                offenders += [f"{path.name}: imports {a.name}" for a in node.names if a.name in SQL_BUILDERS]
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and SQL_STATEMENT.match(node.value)
            ):
                offenders.append(f"{path.name}:{node.lineno}: {node.value[:40]!r}")
    assert offenders == []


def test_the_sql_pattern_recognises_statements() -> None:
    """The rule above can fail: the pattern matches statements as the store writes them, not prose."""
    for statement in ("SELECT 1", " UPDATE `t` SET", "DELETE FROM t", "DO RELEASE_LOCK(x)", "INSERT INTO t"):
        assert SQL_STATEMENT.match(statement), statement
    for prose in ("selected rows", "do this", "Do not retry", "Update the row", "DROPPED"):
        assert not SQL_STATEMENT.match(prose), prose


def test_no_product_module_is_over_450_lines() -> None:
    sizes = {str(p.relative_to(ROOT)): len(p.read_text().splitlines()) for p in _product_files()}
    assert len(sizes) >= 30
    assert {name: n for name, n in sizes.items() if n > 450} == {}


def test_dag_files_are_thin() -> None:
    """DAG files only call into the Airflow glue (the DAG factory); examples keep their DAGs to themselves."""
    dag_files = sorted((ROOT / "dags").glob("*.py"))
    assert dag_files
    for dag_file in dag_files:
        imported = _imported_modules(dag_file)
        assert all(m.startswith("outbox_relay_airflow.") for m in imported), (dag_file.name, imported)
