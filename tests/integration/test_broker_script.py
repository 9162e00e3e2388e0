"""`make services` (and so `make demo`, `make test`, `make airflow`) meets a broker it did not start on its
port: another checkout's (a git worktree's) healthy Kafka-compatible broker is used as it is, and only a
port held by something that does not answer Kafka's Metadata request is an error."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.stack import BOOTSTRAP

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _other_checkout(tmp_path: Path) -> Path:
    """The broker scripts of a second checkout (its own .run/, the same venv)."""
    other = tmp_path / "worktree"
    shutil.copytree(ROOT / "include" / "devstack", other / "include" / "devstack")
    (other / ".venv").symlink_to(ROOT / ".venv")
    return other


def _start(checkout: Path, port: int) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in {"OUTBOX_KAFKA_BOOTSTRAP", "BROKER_PORT"}}
    env.update({"BROKER": "kafka", "BROKER_PORT": str(port)})
    script = checkout / "include" / "devstack" / "broker.sh"
    return subprocess.run(
        ["bash", str(script), "start"], env=env, capture_output=True, text=True, timeout=120
    )


def test_a_healthy_broker_started_by_another_checkout_is_used(tmp_path: Path) -> None:
    host, _, port = BOOTSTRAP.rpartition(":")
    assert host == "127.0.0.1", "the suite's broker is the local one"
    done = _start(_other_checkout(tmp_path), int(port))
    assert done.returncode == 0, done.stderr
    assert f"a Kafka-compatible broker already answers on 127.0.0.1:{port}" in done.stdout
    assert "using it as it is" in done.stdout
    assert not (tmp_path / "worktree" / ".run" / f"broker-{port}.kind").exists()  # not claimed as its own


@pytest.fixture
def not_a_broker() -> Iterator[int]:
    """A port that accepts connections and closes them at once."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    server.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield int(server.getsockname()[1])
    stop.set()
    thread.join(5)
    server.close()


def test_a_port_held_by_something_else_is_refused_naming_it(tmp_path: Path, not_a_broker: int) -> None:
    done = _start(_other_checkout(tmp_path), not_a_broker)
    assert done.returncode != 0
    assert f"127.0.0.1:{not_a_broker} is held by something that is not a working Kafka broker" in done.stderr
    assert "free the port or set BROKER_PORT" in done.stderr
