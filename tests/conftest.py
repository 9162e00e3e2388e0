"""Shared fixtures: a scratch MySQL database per test and unique topics on the real broker."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from outbox_relay.config import ServiceConfig
from outbox_relay.store.connect import make_engine
from outbox_relay.store.ddl import apply_ddl, recreate_database
from tests.stack import BOOTSTRAP, BROKER, DB_SERVER_URL

__all__ = ["BOOTSTRAP", "BROKER", "DB_SERVER_URL", "ROOT"]

ROOT = Path(__file__).resolve().parents[1]
# Airflow reads its settings at import: point it at a throw-away home before any test imports it.
# One home per pytest-xdist worker: SQLite metadata is not shared between processes.
_AIRFLOW_HOME = ROOT / ".run" / f"airflow-tests-{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
_AIRFLOW_HOME.mkdir(parents=True, exist_ok=True)
os.environ["AIRFLOW_HOME"] = str(_AIRFLOW_HOME)  # not setdefault: workers inherit the controller's
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
os.environ.setdefault("AIRFLOW__CORE__DAGS_FOLDER", str(ROOT / "dags"))
os.environ.setdefault("AIRFLOW__CORE__PLUGINS_FOLDER", str(ROOT / "plugins"))
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_AIRFLOW_HOME}/airflow.db"
# As in a deployment: connections' secrets are encrypted (without a key Airflow warns on every lookup, and
# the CLI's output, run in-process by tests, would carry that warning).
os.environ.setdefault("AIRFLOW__CORE__FERNET_KEY", "hKzF2E4dDvGr_Bm-g0BWsbQ7MlldWlNthI1gCzJhR9k=")


SLOW_TEST_TIMEOUT = 900  # a whole demo runs several `airflow dags test`; their subprocesses say 900 s too


def _start_order(item: pytest.Item) -> int:
    """An xdist group runs as one chain on one worker (the 3-broker cluster tests: minutes), so it starts
    first; then the slow tests; the many short ones fill the workers' gaps at the end."""
    if item.get_closest_marker("xdist_group"):
        return 0
    return 1 if item.get_closest_marker("slow") else 2


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Longest first, so parallel workers (pytest-xdist) do not end the run waiting on one of them."""
    for item in items:
        if item.get_closest_marker("slow") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT))
    items.sort(key=_start_order)
    _name_xdist_groups(config, items)


def _name_xdist_groups(config: pytest.Config, items: list[pytest.Item]) -> None:
    """``--dist loadgroup`` sends the tests of one ``xdist_group`` to one worker by the ``@<group>`` suffix of
    their node ids. pytest-xdist 3.8 writes that suffix into ``item._nodeid``, which pytest 9 no longer
    reads (a node's id is ``item._id``): every group was spread over the workers, tests sharing a group's
    topics or stack ran side by side. This writes the suffix where pytest reads it."""
    if not getattr(config.option, "loadgroup", False):
        return
    from _pytest.nodeid import coerce_node_id

    for item in items:
        names = {
            str(m.args[0] if m.args else m.kwargs.get("name", "default"))
            for m in item.iter_markers("xdist_group")
        }
        if names and "@" not in item.nodeid:
            item._id = coerce_node_id(f"{item.nodeid}@{'_'.join(sorted(names))}")  # type: ignore[attr-defined]


@pytest.fixture
def db_engine(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A fresh database with the project's DDL, dropped after the test."""
    name = f"outbox_t_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    url = recreate_database(DB_SERVER_URL, name)
    engine = make_engine(url.render_as_string(hide_password=False))
    apply_ddl(engine)
    yield engine
    engine.dispose()
    admin = create_engine(make_url(DB_SERVER_URL).set(database=None))
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
    admin.dispose()


@pytest.fixture
def topic_name() -> Callable[[str], str]:
    suffix = uuid.uuid4().hex[:10]
    return lambda base: f"t.{base}.{suffix}"


@pytest.fixture
def service_config() -> Callable[..., ServiceConfig]:
    def build(**fields: Any) -> ServiceConfig:
        document: dict[str, Any] = {"service": "orders", "topic": "orders.events", "batch_size": 100}
        document.update(fields)
        return ServiceConfig.model_validate(document)

    return build


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    """With OUTBOX_TEST_CPU_REPORT=<file>: append each test's CPU seconds (this process plus the child
    processes it waited for) to the file, to find where the suite's time goes."""
    report = os.environ.get("OUTBOX_TEST_CPU_REPORT")
    if not report:
        return (yield)
    import resource

    def used() -> float:
        own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime

    before = used()
    try:
        return (yield)
    finally:
        with open(report, "a", encoding="utf-8") as out:
            out.write(f"{used() - before:.1f}\t{item.nodeid}\n")


@pytest.fixture
def airflow_connections_env(db_engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """The relay's Airflow connections (this test's database, this broker) as AIRFLOW_CONN_* variables,
    for code under test that resolves connections the Airflow way (tasks, CLI)."""
    from tests.stack import airflow_connections

    for name, value in airflow_connections(db_engine).items():
        monkeypatch.setenv(name, value)
