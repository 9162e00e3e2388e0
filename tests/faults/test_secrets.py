"""Scenario 12: a run's task logs never contain the DB or Kafka password, and the Kafka security
settings given in the Airflow connection reach the producer, the admin client and the consumer.

The relay and confirmations DAGs run through `airflow dags test` with a MariaDB user that has a
password (created for this test, dropped after) and a Kafka connection carrying SASL credentials.
Tansu speaks no SASL: a SASL_PLAINTEXT connection therefore fails the SASL handshake, which is the
evidence that the connection's settings reached the producer (relay task) and the consumer
(confirmations DAG) (and the failure path is where a
password would most likely leak). Unit-level checks of each setting: tests/airflow/test_hooks.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text

from tests.conftest import DB_SERVER_URL
from tests.faults.conftest import Broker, dags_test
from tests.faults.test_airflow_retry import write_service
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, statuses
from tests.stack import airflow_connections

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

DB_PASSWORD = f"Db-Pw-{uuid.uuid4().hex[:16]}!"
KAFKA_PASSWORD = f"Kafka-Pw-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def password_engine(db_engine: Engine) -> Iterator[Engine]:
    """The test database, reached as a MariaDB user with a password."""
    user = f"fault_{uuid.uuid4().hex[:10]}"
    admin = create_engine(DB_SERVER_URL)
    with admin.begin() as conn:
        conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY '{DB_PASSWORD}'"))
        conn.execute(text(f"GRANT ALL ON `{db_engine.url.database}`.* TO '{user}'@'%'"))
    engine = create_engine(db_engine.url.set(username=user, password=DB_PASSWORD))
    yield engine
    engine.dispose()
    with admin.begin() as conn:
        conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
    admin.dispose()


def _everything_logged(env: dict[str, str], *runs: str) -> str:
    """The runs' console output plus every file Airflow wrote under its home (task logs included)."""
    home = Path(env["AIRFLOW_HOME"])
    files = [p.read_text(errors="replace") for p in home.rglob("*") if p.is_file() and p.suffix != ".db"]
    return "\n".join([*runs, *files])


@pytest.mark.slow
def test_task_logs_never_contain_passwords_and_sasl_settings_reach_the_clients(
    password_engine: Engine,
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    airflow_env: dict[str, str],
    tmp_path: Path,
    record_figures: Callable[..., None],
) -> None:
    topic, results = topic_name("vault"), topic_name("vault.results")
    create_topics(topic, results, bootstrap=broker.bootstrap)
    ids = insert_rows(db_engine, topic, [f"k{i}" for i in range(10)])
    services = write_service(
        tmp_path / "services", "vault", topic, confirmation={"topic": results}, time_budget_seconds=5
    )
    plain = {"bootstrap.servers": broker.bootstrap, "sasl.username": "relay", "sasl.password": KAFKA_PASSWORD}
    env = {
        **airflow_env,
        **airflow_connections(password_engine, plain),
        "OUTBOX_RELAY_SERVICES_DIR": str(services),
        "OUTBOX_FAULT_RETRIES": "0",
    }

    relayed = dags_test(env, "outbox_vault_relay")
    assert relayed.returncode == 0, (relayed.stdout + relayed.stderr)[-4000:]
    # Every row relayed, through the only database connection Airflow had: the user with the password.
    assert statuses(db_engine) == dict.fromkeys(ids, "SENT")

    sasl = {**plain, "security.protocol": "SASL_PLAINTEXT", "sasl.mechanism": "PLAIN"}
    env.update(airflow_connections(password_engine, sasl))
    later = insert_rows(db_engine, topic, ["late"])
    refused = dags_test(env, "outbox_vault_relay", "relay")  # the producer alone (tasks test)
    confirm = dags_test(env, "outbox_vault_confirmations")
    # The connection's SASL settings reached the producer and the consumer: both tried SASL.
    for run in (refused, confirm):
        output = run.stdout + run.stderr
        assert "SASL PLAIN mechanism handshake failed" in output, output[-4000:]
    assert "Is the broker reachable" in refused.stdout + refused.stderr  # the relay run failed clearly
    assert statuses(db_engine)[later[0]] == "NEW"  # and marked nothing SENT

    logged = _everything_logged(
        env, relayed.stdout, relayed.stderr, refused.stdout, refused.stderr, confirm.stdout, confirm.stderr
    )
    # The scan covers the tasks' own logs: the relay's summary of the run that relayed the 10 rows, and the
    # refused producer's and consumer's SASL errors (asserted above on the same output).
    assert re.search(r"service vault relay run \S+: \{.*'published': 10\b", logged), logged[-4000:]
    leaks = {name: logged.count(secret) for name, secret in (("db", DB_PASSWORD), ("kafka", KAFKA_PASSWORD))}
    record_figures(
        {
            "log_bytes_scanned": len(logged),
            "db_password_hits": leaks["db"],
            "kafka_password_hits": leaks["kafka"],
        }
    )
    assert leaks == {"db": 0, "kafka": 0}
