"""One way into a service's outbox table: ``OutboxStore`` hands out every query object, built once and
sharing its table and retry state; nobody outside ``store`` builds them; each backlog figure has one
definition that ``plan``, the health check and the page all use."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay.config.table import STANDARD_COLUMNS
from outbox_relay.dashboard import Dashboard
from outbox_relay.database import OutboxStore as PublicOutboxStore
from outbox_relay.errors import ConfigurationError
from outbox_relay.health import HealthCheck
from outbox_relay.store.outbox import OutboxStore

ROOT = Path(__file__).resolve().parents[3]
QUERY_OBJECTS = (
    "claims", "history", "replays", "backfills", "figures", "dashboard", "activity", "explain", "watch", "retention",
    "audit",
)  # fmt: skip
# What only the store may build: the table, the retry state and the query classes.
STORE_ONLY = {"OutboxTable", "retry_state_for", "ClaimQuery", "WatchQuery", "BacklogFigures"}


def test_the_facade_hands_out_each_query_object_once_on_one_table(
    service_config: Callable[..., ServiceConfig],
) -> None:
    store = OutboxStore(service_config())
    for name in QUERY_OBJECTS:
        queries = getattr(store, name)
        assert getattr(store, name) is queries, name  # built once
        table = getattr(queries, "table", None)
        assert table is None or table is store.table, name
        retry_state = getattr(queries, "retry_state", None)
        assert retry_state is None or retry_state is store.retry_state, name
    assert store.activity.queries is store.dashboard
    assert store.figures.hints is store.dashboard.hints  # one read of the table's indexes per store


def test_a_query_object_the_config_cannot_serve_is_refused_by_name(
    service_config: Callable[..., ServiceConfig],
) -> None:
    store = OutboxStore(service_config())
    with pytest.raises(ConfigurationError, match="has no 'reconciliation' section"):
        _ = store.reconciliation
    with pytest.raises(ConfigurationError, match="creation time"):
        _ = OutboxStore(service_config(columns={**STANDARD_COLUMNS, "created_at": None})).audit


def test_the_glue_gets_the_same_facade_from_the_core() -> None:
    assert PublicOutboxStore is OutboxStore


def test_a_page_request_builds_one_store(service_config: Callable[..., ServiceConfig]) -> None:
    dashboard = Dashboard(service_config())
    assert dashboard.explainer.store is dashboard.store and dashboard.health.store is dashboard.store


def _store_only_calls(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            if name in STORE_ONLY or ((name or "").endswith("Queries") and name != "InboxViewQueries"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    return found


def test_nobody_outside_the_store_builds_the_table_or_its_queries() -> None:
    store = ROOT / "include" / "outbox_relay" / "store"
    product = [ROOT / "include" / "outbox_relay", ROOT / "include" / "outbox_inbox", ROOT / "plugins"]
    files = [p for package in product for p in package.rglob("*.py") if store not in p.parents]
    assert len(files) > 30
    assert [call for path in files for call in _store_only_calls(path)] == []


class _Result:
    def __init__(self, value: Any) -> None:
        self.value = value

    def scalar(self) -> Any:
        return self.value

    def __iter__(self) -> Any:
        return iter([("NEW", 3)])


class _RecordingConn:
    """Answers every statement with 42 (one value) or one (NEW, 3) row, and keeps the statements."""

    def __init__(self) -> None:
        self.statements: list[str] = []

    def execute(self, sql: Any, params: Any = None) -> _Result:
        self.statements.append(str(sql))
        return _Result(42)


def test_plan_and_the_health_check_read_the_oldest_new_age_the_same_way(
    service_config: Callable[..., ServiceConfig],
) -> None:
    config = service_config()
    plan_conn, health_conn = _RecordingConn(), _RecordingConn()
    summary = OutboxStore(config).backlog(plan_conn)  # type: ignore[arg-type]
    figures = HealthCheck(config).figures(health_conn)  # type: ignore[arg-type]
    assert summary == {"rows_by_status": {"NEW": 3}, "oldest_new_seconds": 42}
    assert figures["oldest_new_age_seconds"] == 42
    ages = [s for s in plan_conn.statements + health_conn.statements if "TIMESTAMPDIFF" in s]
    assert len(ages) == 2 and ages[0] == ages[1]
    assert "ORDER BY" in ages[0] and "LIMIT 1" in ages[0] and "MIN(" not in ages[0]  # the next row to send
