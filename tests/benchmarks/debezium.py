"""Debezium as a peer: Kafka Connect in standalone mode with the Debezium MySQL connector and its Outbox
Event Router, reading the local MariaDB's binary log (``include/devstack/mysql.sh`` turns it on;
``include/devstack/debezium.sh`` fetches Connect 3.7.2 and Debezium 2.7.4.Final, and says why those).

One worker JVM serves a whole benchmark component; each measurement gets its own connector (its own
offsets and schema history, starting at the binary log's current end), so no connector reads what another
peer wrote. The router sends each outbox row to the topic its ``topic`` column names, keyed by
``aggregate_id``, with the payload as the value and ``message_id`` as the ``outbox-message-id`` header,
the same record the relay and the lean loop produce. Producer settings match the relay's where Connect lets
them (``acks=all``, idempotent, lz4, the relay's default ``linger.ms``); the rest are Debezium's defaults
except ``poll.interval.ms``, set to the relay's polling interval in the latency figures (50 ms).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tests.benchmarks.common import BOOTSTRAP, create_topics, delete_topics
from tests.benchmarks.processes import cpu_seconds

ROOT = Path(__file__).resolve().parents[2]
CONNECTOR_CLASS = "io.debezium.connector.mysql.MySqlConnector"
ROUTER = "io.debezium.transforms.outbox.EventRouter"
LINGER_MS = 5  # the relay's default kafka.linger_ms
POLL_INTERVAL_MS = 50
STREAMING = "Connected to binlog at"  # Debezium 2.7's log line once it reads from its start position


class ConnectError(RuntimeError):
    """Kafka Connect or the connector did not do what the benchmark needs (the message says what)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status  # the REST API's HTTP status, when it answered


@cache
def install() -> Path:
    """The folder with ``lib/`` (Connect) and ``plugins/`` (Debezium), fetched once."""
    done = subprocess.run(
        ["bash", str(ROOT / "include/devstack/debezium.sh"), "install"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise ConnectError(f"include/devstack/debezium.sh install failed:\n{done.stderr[-3000:]}")
    return Path(done.stdout.strip().splitlines()[-1])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class ConnectWorker:
    """One standalone Kafka Connect worker running one connector (its JVM's CPU is what a Debezium
    deployment pays). The connector comes from a properties file on the command line: in Connect 3.7.2's
    standalone mode a connector created over REST never got its task (its POST timed out after 90 s)."""

    def __init__(self, home: Path, work: Path, name: str, connector: dict[str, str]) -> None:
        self.port, self.name = _free_port(), name
        work.mkdir(parents=True, exist_ok=True)
        worker = work / "worker.properties"
        _write_properties(
            worker,
            {
                "bootstrap.servers": BOOTSTRAP,
                "key.converter": "org.apache.kafka.connect.storage.StringConverter",
                "value.converter": "org.apache.kafka.connect.storage.StringConverter",
                "offset.storage.file.filename": str(work / "connect.offsets"),
                "plugin.path": str(home / "plugins"),
                "listeners": f"http://127.0.0.1:{self.port}",
                "producer.compression.type": "lz4",
                "producer.linger.ms": str(LINGER_MS),
                "producer.acks": "all",
                "producer.enable.idempotence": "true",
            },
        )
        properties = work / f"{name}.properties"
        _write_properties(properties, {"name": name, **connector})
        log4j = work / "log4j.properties"
        log4j.write_text(
            "log4j.rootLogger=INFO, file\nlog4j.appender.file=org.apache.log4j.FileAppender\n"
            f"log4j.appender.file.File={work / 'connect.log'}\n"
            "log4j.appender.file.layout=org.apache.log4j.PatternLayout\n"
            "log4j.appender.file.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
        )
        self.log = work / "connect.log"
        self.process = subprocess.Popen(
            [
                "java",
                "-Xms256m",
                "-Xmx1g",
                f"-Dlog4j.configuration=file:{log4j}",
                "-cp",
                f"{home / 'lib'}/*",
                "org.apache.kafka.connect.cli.ConnectStandalone",
                str(worker),
                str(properties),
            ],
            stdout=subprocess.DEVNULL,
            stderr=(work / "connect.err").open("w"),
            cwd=work,
        )
        try:
            self.wait_running(180)  # (the log is appended to, so later starts are not seen this way)
        except BaseException:
            self.close()
            raise

    def wait_running(self, seconds: float) -> None:
        """Until its task reads the binary log: a task is RUNNING before it has read where the log ends,
        and a row committed in between is never sent (the connector starts after it)."""
        self._wait(lambda: self._in_state("RUNNING"), f"connector {self.name} to run", seconds)
        self._wait(
            lambda: STREAMING in self.log.read_text(), f"connector {self.name} to read the binlog", seconds
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.pid)

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=data,
            method=method,
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=120) as response:
                text = response.read()
                return json.loads(text) if text else {}
        except urllib.error.HTTPError as exc:
            body = exc.read().decode()[:2000]
            raise ConnectError(f"Kafka Connect refused {method} {path}: {exc.code} {body}", exc.code) from exc

    def _get(self, path: str) -> Any:
        if self.process.poll() is not None:
            raise ConnectError(f"the Connect worker exited ({self.process.returncode}); log: {self.log}")
        try:
            return self._request("GET", path)
        except ConnectError as exc:
            if exc.status == 404:  # the worker is up, the connector not yet
                return None
            raise
        except (urllib.error.URLError, ConnectionError):  # the worker is not up yet
            return None

    def _wait(self, condition: Any, what: str, seconds: float) -> Any:
        deadline = time.monotonic() + seconds
        while (result := condition()) in (None, False):
            if time.monotonic() > deadline:
                tail = self.log.read_text()[-3000:] if self.log.exists() else "(no log)"
                raise ConnectError(f"timed out after {seconds:g}s waiting for {what}; log tail:\n{tail}")
            time.sleep(0.05)
        return result

    def state(self) -> tuple[str, list[str]]:
        status = self._get(f"/connectors/{self.name}/status") or {}
        tasks = status.get("tasks", [])
        for task in tasks:
            if task.get("state") == "FAILED":
                raise ConnectError(f"connector {self.name}'s task failed:\n{task.get('trace', '')[:3000]}")
        return status.get("connector", {}).get("state", ""), [t.get("state", "") for t in tasks]

    def _in_state(self, state: str) -> bool:
        connector, tasks = self.state()
        return connector == state and (state == "STOPPED" or (bool(tasks) and set(tasks) == {state}))

    def stop(self) -> None:
        """Stop its task (Connect 3.5+): it reads nothing until ``resume``, keeping its offsets."""
        self._request("PUT", f"/connectors/{self.name}/stop")
        self._wait(lambda: self._in_state("STOPPED"), f"connector {self.name} to stop", 60)

    def resume(self) -> None:
        self._request("PUT", f"/connectors/{self.name}/resume")

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)


def connector_config(engine: Engine, prefix: str, batch: int) -> dict[str, str]:
    """The MySQL connector on ``engine``'s outbox table, from the binary log's end, through the router."""
    url = engine.url
    database = url.database or ""
    return {
        "connector.class": CONNECTOR_CLASS,
        "connector.adapter": "mariadb",
        "tasks.max": "1",
        "database.hostname": url.host or "127.0.0.1",
        "database.port": str(url.port or 3306),
        "database.user": url.username or "root",
        "database.password": url.password or "",
        "database.server.id": str(5400 + os.getpid() % 1000),
        "topic.prefix": prefix,
        "database.include.list": database,
        "table.include.list": f"{database}.outbox_message",
        "snapshot.mode": "no_data",
        "include.schema.changes": "false",
        "tombstones.on.delete": "false",
        "schema.history.internal.kafka.bootstrap.servers": BOOTSTRAP,
        "schema.history.internal.kafka.topic": f"{prefix}.schema-history",
        # Only this table's schema (the server holds many databases; every other one would be read too).
        "schema.history.internal.store.only.captured.tables.ddl": "true",
        "schema.history.internal.store.only.captured.databases.ddl": "true",
        "max.batch.size": str(batch),
        "max.queue.size": str(max(8192, 4 * batch)),
        "poll.interval.ms": str(POLL_INTERVAL_MS),
        "transforms": "outbox",
        "transforms.outbox.type": ROUTER,
        "transforms.outbox.table.field.event.id": "message_id",
        "transforms.outbox.table.field.event.key": "aggregate_id",
        "transforms.outbox.table.field.event.payload": "payload",
        "transforms.outbox.table.fields.additional.placement": "message_id:header:outbox-message-id",
        "transforms.outbox.route.by.field": "topic",
        "transforms.outbox.route.topic.replacement": "${routedByValue}",
    }


def _write_properties(path: Path, values: dict[str, str]) -> None:
    """A Java properties file (``$``, ``{`` and ``}`` need no escaping; ``\\`` does)."""
    path.write_text("".join(f"{k}={v.replace(chr(92), chr(92) * 2)}\n" for k, v in values.items()))


@contextmanager
def outbox_connector(engine: Engine, batch: int, work: Path) -> Iterator[ConnectWorker]:
    """A worker running one connector on ``engine``'s outbox table from the binary log's current end
    (stopped afterwards; its schema history topic deleted)."""
    prefix = f"dbzbench{uuid.uuid4().hex[:8]}"
    create_topics(f"{prefix}.schema-history", partitions=1)
    try:
        worker = ConnectWorker(
            install(), work / prefix, f"{prefix}-outbox", connector_config(engine, prefix, batch)
        )
        try:
            yield worker
        finally:
            worker.close()
    finally:
        delete_topics(f"{prefix}.schema-history")
