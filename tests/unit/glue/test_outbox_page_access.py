"""The Outbox page's access rules with a fake auth manager: a user sees only the services whose relay DAG
it may read, and gets 403 on the others' pages (the real api-server test covers 401 and the cookie)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from outbox_relay.config import ServiceConfig
from outbox_relay.config.loader import LoadedServices
from outbox_relay.dashboard import ServiceFigures

pytestmark = pytest.mark.airflow


class FakeAuthManager:
    def __init__(self, readable: set[str]) -> None:
        self.readable = readable
        self.asked: list[tuple[str, str | None]] = []

    def is_authorized_dag(self, *, method: str, details: Any, user: Any, **_: Any) -> bool:
        self.asked.append((method, details.id))
        return method == "GET" and details.id in self.readable


@pytest.fixture
def client(monkeypatch: pytest.MonkeyPatch) -> tuple[TestClient, FakeAuthManager]:
    from airflow.api_fastapi.core_api.security import get_user

    from outbox_relay_airflow.outbox_page import access
    from outbox_relay_airflow.outbox_page import app as page

    services = {n: ServiceConfig.model_validate({"service": n, "topic": "t"}) for n in ("open", "secret")}
    manager = FakeAuthManager({"outbox_open_relay"})
    monkeypatch.setattr(access, "get_auth_manager", lambda: manager)
    monkeypatch.setattr(page, "_loaded", lambda: LoadedServices(services, []))
    monkeypatch.setattr(page, "_figures", lambda c: ServiceFigures(c.service, c.table))
    monkeypatch.setitem(page.app.dependency_overrides, get_user, lambda: object())
    return TestClient(page.app), manager


def test_a_user_sees_only_services_it_may_read(client: tuple[TestClient, FakeAuthManager]) -> None:
    http, manager = client
    assert [s["service"] for s in http.get("/api/services").json()] == ["open"]
    assert ("GET", "outbox_secret_relay") in manager.asked
    index = http.get("/")
    assert index.status_code == 200 and "/services/open" in index.text and "secret" not in index.text


@pytest.mark.parametrize(
    "path",
    ["/api/services/secret", "/api/services/secret/rows", "/api/services/secret/rows/1", "/services/secret"],
)
def test_other_services_are_forbidden(client: tuple[TestClient, FakeAuthManager], path: str) -> None:
    http, _ = client
    reply = http.get(path)
    assert reply.status_code == 403 and "outbox_secret_relay" in reply.text


def test_bad_filters_are_named(client: tuple[TestClient, FakeAuthManager]) -> None:
    http, _ = client
    reply = http.get("/api/services/open/rows", params={"kind": "lost"})
    assert reply.status_code == 422 and "kind must be" in reply.text
    reply = http.get("/api/services/open/rows", params={"since": "yesterday"})
    assert reply.status_code == 422 and "'yesterday' is not an ISO date" in reply.text


class Operator:
    def get_name(self) -> str:
        return "ops"


class Run:
    run_id = "manual__1"


def test_the_backfill_form_passes_typed_params_to_the_backfill_dag(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.api_fastapi.core_api.security import get_user

    from outbox_relay.config.table import STANDARD_COLUMNS
    from outbox_relay_airflow.outbox_page import access, actions
    from outbox_relay_airflow.outbox_page import app as page

    class Everything:
        def is_authorized_dag(self, **_: Any) -> bool:
            return True

    untimed = {"service": "untimed", "topic": "t", "columns": {**STANDARD_COLUMNS, "created_at": None}}
    services = {"timed": ServiceConfig.model_validate({"service": "timed", "topic": "t"}),
                "untimed": ServiceConfig.model_validate(untimed)}  # fmt: skip
    triggered: list[tuple[str, dict[str, Any], str]] = []
    monkeypatch.setattr(access, "get_auth_manager", Everything)
    monkeypatch.setattr(actions, "get_auth_manager", Everything)
    monkeypatch.setattr(page, "_loaded", lambda: LoadedServices(services, []))
    monkeypatch.setattr(
        actions, "trigger_dag",
        lambda dag_id, conf, triggering_user_name, **_: triggered.append((dag_id, conf, triggering_user_name)) or Run(),
    )  # fmt: skip
    monkeypatch.setitem(page.app.dependency_overrides, get_user, Operator)
    http = TestClient(page.app)
    form = {"since": "2026-11-20T06:00", "until": "2026-11-20T08:00", "reason": "INC-9", "republish": "on",
            "max_rows_per_second": "500", "chunk_seconds": ""}  # fmt: skip
    reply = http.post("/services/timed/backfill", data=form)
    assert reply.status_code == 200 and "Backfill run triggered" in reply.text and "manual__1" in reply.text
    assert triggered == [("outbox_timed_backfill", {"since": "2026-11-20T06:00", "until": "2026-11-20T08:00",
                          "reason": "INC-9", "republish": True, "max_rows_per_second": 500.0, "dry_run": False},
                          "ops")]  # fmt: skip
    slow = http.post("/services/timed/backfill", data={**form, "max_rows_per_second": "fast"})
    assert slow.status_code == 422 and "max_rows_per_second: 'fast' is not a number" in slow.text
    missing = http.post("/services/untimed/backfill", data=form)
    assert missing.status_code == 404 and "map columns.created_at" in missing.text
    assert len(triggered) == 1


def test_services_on_one_database_connection_share_one_small_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    from outbox_relay_airflow.outbox_page import app

    for name in ("page_db_1", "page_db_2"):
        monkeypatch.setenv(
            f"AIRFLOW_CONN_{name.upper()}", '{"conn_type": "mysql", "host": "db", "schema": "shop"}'
        )
    monkeypatch.setattr(app, "_engines", {})
    a, b, c = (
        ServiceConfig.model_validate({"service": name, "topic": "t", "connections": {"db": db}})
        for name, db in (("a", "page_db_1"), ("b", "page_db_1"), ("c", "page_db_2"))
    )
    assert app._engine(a) is app._engine(b) is not app._engine(c)  # one idle pool per database, not service
    assert app._engine(a).pool.size() == app.PAGE_POOL_SIZE and len(app._engines) == 2
