"""Where the glue finds connections and service files outside a task (the CLI, the Outbox page): the same
places Airflow does, and an error that says where it looked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from airflow.sdk import Connection

from outbox_relay.config.loader import SERVICES_DIR_ENV
from outbox_relay_airflow import connections
from outbox_relay_airflow.services_folder import read_services, services_folder


@pytest.fixture
def outside_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(connections, "_lookup_outside_tasks", True)


def test_outside_tasks_a_connection_comes_from_airflows_own_lookup(
    outside_tasks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    stored = {
        "conn_type": "outbox",
        "host": "db.internal",
        "port": 3307,
        "login": "relay",
        "password": "p@ss",
        "schema": "orders",
        "extra": {"charset": "latin1"},
    }
    monkeypatch.setenv("AIRFLOW_CONN_ORDERS_DB", json.dumps(stored))
    found = connections.get_connection("orders_db")
    assert isinstance(found, Connection)
    assert (found.conn_type, found.host, found.port, found.login, found.password, found.schema) == (
        "outbox",
        "db.internal",
        3307,
        "relay",
        "p@ss",
        "orders",
    )
    assert found.extra_dejson == {"charset": "latin1"}


def test_a_missing_connection_names_every_place_looked_in(outside_tasks: None, tmp_path: Path) -> None:
    from airflow.exceptions import AirflowNotFoundException  # type: ignore[attr-defined]

    with pytest.raises(AirflowNotFoundException) as raised:
        connections.get_connection("nowhere_db")
    message = str(raised.value)
    assert message.startswith("Airflow connection 'nowhere_db' not found: not in $AIRFLOW_CONN_NOWHERE_DB")
    assert "the secrets backend, nor the metadata database" in message and "AIRFLOW_HOME=" in message


def test_the_services_folder_is_the_one_given_then_the_setting_then_airflows_dag_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AIRFLOW__CORE__DAGS_FOLDER", str(tmp_path / "dags"))
    monkeypatch.setenv(SERVICES_DIR_ENV, str(tmp_path / "env"))
    assert services_folder(tmp_path / "given") == (tmp_path / "given", "the folder given")
    assert services_folder()[0] == tmp_path / "env"
    monkeypatch.delenv(SERVICES_DIR_ENV)
    folder, _origin = services_folder()
    assert folder == tmp_path / "dags" / "services"
    (error,) = read_services().errors
    assert str(error) == (
        f"{folder}: no such folder ('services' in Airflow's DAG folder, [core] dags_folder; set "
        f"${SERVICES_DIR_ENV} to the folder of the service configs if they are elsewhere): no service is loaded"
    )
    folder.mkdir(parents=True)
    (folder / "orders.yaml").write_text("topic: orders.events\n")
    assert list(read_services().services) == ["orders"]
