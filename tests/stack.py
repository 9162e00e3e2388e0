"""Where the test and benchmark services are (environment, with the Makefile's defaults). No side
effects on import, unlike tests/conftest.py, so the benchmark can use it too."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from sqlalchemy import Engine

DB_SERVER_URL = os.environ.get("OUTBOX_TEST_DB_URL", "mysql+pymysql://root@127.0.0.1:3306")
BOOTSTRAP = os.environ.get("OUTBOX_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
# Which broker BOOTSTRAP is (the Makefile's BROKER): kafka (Apache Kafka) or tansu.
BROKER = os.environ.get("BROKER") or ("kafka" if shutil.which("java") else "tansu")


def database_connection(engine: Engine, conn_type: str = "mysql") -> dict[str, object]:
    """An Airflow connection (as JSON fields) to ``engine``'s database."""
    url = engine.url
    return {"conn_type": conn_type, "host": url.host, "port": url.port or 3306, "login": url.username,
            "password": url.password or "", "schema": url.database}  # fmt: skip


def airflow_connections(engine: Engine, kafka_extra: dict[str, object] | None = None) -> dict[str, str]:
    """AIRFLOW_CONN_* for the relay: ``engine``'s database as ``outbox_db`` and, by default, this broker as
    ``kafka_default``."""
    db = database_connection(engine)
    kafka = {"conn_type": "kafka", "extra": kafka_extra or {"bootstrap.servers": BOOTSTRAP}}
    return {"AIRFLOW_CONN_OUTBOX_DB": json.dumps(db), "AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(kafka)}


def service_folder(tmp_path: Path, service: str, document: str) -> Path:
    """A services folder (``OUTBOX_RELAY_SERVICES_DIR``) holding one service file with ``document``."""
    folder = tmp_path / "services"
    folder.mkdir(exist_ok=True)
    (folder / f"{service}.yaml").write_text(document)
    return folder
