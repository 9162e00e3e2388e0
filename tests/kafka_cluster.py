"""Real Apache Kafka clusters for tests: N combined broker+controller KRaft JVMs on 127.0.0.1.

The jars come from include/devstack/kafka/pom.xml via ``kafka.sh fetch``, so fault tests can kill, pause
and restart real brokers instead of mocking them. Readiness is judged by Metadata requests sent to each
node's own port (a raw Metadata v4 request, so the answer is known to come from that node), never by sleeps.
"""

from __future__ import annotations

import atexit
import base64
import functools
import os
import re
import signal
import socket
import struct
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Self

from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

ROOT = Path(__file__).resolve().parents[1]
# Same choices as kafka.sh (measured there): C1 only and SerialGC start faster on 2 cores and keep up with
# the clients; a smaller heap than the dev broker because a test may run three of them.
JVM_OPTS = (
    "-Xms128m",
    "-Xmx512m",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:-UsePerfData",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)
LOG4J2 = ROOT / "include" / "devstack" / "kafka" / "log4j2.properties"  # shared with kafka.sh
_fetched: dict[Path, Path] = {}


def kafka_version(root: Path = ROOT) -> str:
    """The pinned Kafka version, read from the pom so the lib dir name cannot drift from kafka.sh."""
    pom = (root / "include" / "devstack" / "kafka" / "pom.xml").read_text()
    found = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", pom)
    if found is None:
        raise RuntimeError("kafka.version property missing from include/devstack/kafka/pom.xml")
    return found.group(1)


def kafka_jars(root: Path = ROOT) -> Path:
    """Run ``kafka.sh fetch`` once per process (it is a no-op when cached) and return the lib dir."""
    if root not in _fetched:
        done = subprocess.run(
            ["bash", str(root / "include" / "devstack" / "kafka.sh"), "fetch"],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"kafka.sh fetch failed:\n{done.stdout}{done.stderr}")
        _fetched[root] = root / ".run" / "kafka" / f"lib-{kafka_version(root)}"
    return _fetched[root]


def java_bin() -> str:
    """JAVA_HOME wins, as in kafka.sh; otherwise ``java`` from PATH."""
    home = os.environ.get("JAVA_HOME")
    return str(Path(home) / "bin" / "java") if home else "java"


@functools.cache
def cds_archive(root: Path, java: str) -> Path | None:
    """The class-data archive ``kafka.sh fetch`` built for this JDK build, if any: mapping it saves ~40% of
    each JVM start. Named by the exact runtime version, as kafka.sh names it."""
    if os.environ.get("KAFKA_CDS") == "0":
        return None
    shown = subprocess.run(
        [java, "-XshowSettings:properties", "-version"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"^\s*java\.runtime\.version = (.+)$", shown.stderr, re.MULTILINE)
    if found is None:
        return None
    archive = root / ".run" / "kafka" / f"cds-{kafka_version(root)}-java{found.group(1).strip()}.jsa"
    return archive if archive.is_file() else None


def free_ports(count: int) -> list[int]:
    """Distinct free loopback ports; all sockets stay bound until every port is picked."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def new_cluster_id() -> str:
    """16 random bytes in URL-safe base64 (Kafka's Uuid text form); never starting with '-', which
    the storage tool would read as an option."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


@dataclass(frozen=True)
class PartitionState:
    leader: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]


@dataclass(frozen=True)
class Metadata:
    """One node's answer to a Metadata v4 request: the live brokers and the asked-for topics."""

    brokers: frozenset[int]
    topics: dict[str, dict[int, PartitionState]]
    topic_errors: dict[str, int]


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, fmt: str) -> int:
        (value,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(value)

    def string(self) -> str | None:
        size = self.take(">h")
        if size < 0:
            return None
        self.pos += size
        return self.data[self.pos - size : self.pos].decode()

    def ints(self) -> tuple[int, ...]:
        return tuple(self.take(">i") for _ in range(self.take(">i")))


def _recv(sock: socket.socket, size: int) -> bytes:
    buf = bytearray()
    while len(buf) < size:
        chunk = sock.recv(size - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return bytes(buf)


def metadata(port: int, topics: Sequence[str] = (), timeout: float = 2.0) -> Metadata:
    """Send a Metadata v4 request to the broker on 127.0.0.1:port itself (no client-side routing) with
    topic auto-creation allowed, so a broker that had it on would create the topic."""
    body = struct.pack(">hhih", 3, 4, 1, len(b"kafka_cluster")) + b"kafka_cluster"
    body += struct.pack(">i", len(topics))
    for name in topics:
        raw = name.encode()
        body += struct.pack(">h", len(raw)) + raw
    body += struct.pack(">?", True)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        reader = _Reader(_recv(sock, struct.unpack(">i", _recv(sock, 4))[0]))
    reader.take(">i")  # correlation id
    reader.take(">i")  # throttle time
    brokers = set()
    for _ in range(reader.take(">i")):
        brokers.add(reader.take(">i"))
        reader.string()
        reader.take(">i")
        reader.string()
    reader.string()  # cluster id
    reader.take(">i")  # controller id
    found: dict[str, dict[int, PartitionState]] = {}
    errors: dict[str, int] = {}
    for _ in range(reader.take(">i")):
        error, name = reader.take(">h"), reader.string() or ""
        reader.take(">?")
        errors[name] = error
        parts = found.setdefault(name, {})
        for _ in range(reader.take(">i")):
            reader.take(">h")
            index, leader = reader.take(">i"), reader.take(">i")
            parts[index] = PartitionState(leader, reader.ints(), reader.ints())
    return Metadata(frozenset(brokers), found, errors)


@dataclass
class _Node:
    index: int
    port: int
    controller_port: int
    home: Path
    process: subprocess.Popen[bytes] | None = None
    paused: bool = False
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.home.with_suffix(".log")

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


class KafkaCluster:
    """``nodes`` KRaft nodes, each broker and controller, all of them voters of one static quorum.

    Node i has ``node.id`` i, so leader ids from metadata are node indexes. Use as a context manager or
    call ``stop()`` from a finalizer; an atexit hook also kills the JVMs if a test forgot.
    """

    def __init__(
        self,
        nodes: int,
        workdir: Path,
        *,
        ready_timeout: float = 60.0,
        overrides: dict[str, str] | None = None,
        root: Path = ROOT,
    ) -> None:
        if nodes < 1:
            raise ValueError("a cluster needs at least one node")
        self.workdir = workdir
        self.ready_timeout = ready_timeout
        self.overrides = dict(overrides or {})
        self.root = root
        ports = free_ports(2 * nodes)
        self.nodes = [_Node(i, ports[2 * i], ports[2 * i + 1], workdir / f"node-{i}") for i in range(nodes)]
        self._lib: Path | None = None

    @property
    def bootstrap(self) -> str:
        return ",".join(f"127.0.0.1:{n.port}" for n in self.nodes)

    @property
    def node_pids(self) -> list[int | None]:
        return [n.process.pid if n.process is not None and n.running() else None for n in self.nodes]

    def config(self, node: _Node) -> dict[str, str]:
        """server.properties of one node; ``overrides`` (constructor) win."""
        count = len(self.nodes)
        replication = str(min(3, count))
        min_isr = "2" if count >= 3 else "1"
        voters = ",".join(f"{n.index}@127.0.0.1:{n.controller_port}" for n in self.nodes)
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.index),
            "controller.quorum.voters": voters,
            "listeners": f"PLAINTEXT://127.0.0.1:{node.port},CONTROLLER://127.0.0.1:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{node.port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(node.home / "data"),
            "auto.create.topics.enable": "false",
            "num.partitions": "1",
            "default.replication.factor": replication,
            "min.insync.replicas": min_isr,
            "offsets.topic.replication.factor": replication,
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": replication,
            "transaction.state.log.min.isr": min_isr,
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": replication,
            "share.coordinator.state.topic.min.isr": min_isr,
            "group.initial.rebalance.delay.ms": "0",
            # A killed or paused broker is fenced (and leaves every ISR) after 4 s instead of 9 s.
            "broker.session.timeout.ms": "4000",
            "broker.heartbeat.interval.ms": "500",
        }
        props.update(self.overrides)
        return props

    def start(self) -> None:
        """Format every node's storage (first time only, in parallel), start all, wait until each node
        answers metadata listing all N brokers. On any failure every JVM is killed before raising."""
        if any(n.running() for n in self.nodes):
            raise RuntimeError("cluster already started")
        self._lib = kafka_jars(self.root)
        self.workdir.mkdir(parents=True, exist_ok=True)
        for node in self.nodes:
            node.home.mkdir(parents=True, exist_ok=True)
            text = "".join(f"{k}={v}\n" for k, v in self.config(node).items())
            (node.home / "server.properties").write_text(text)
        self._format()
        atexit.register(self.stop)
        try:
            for node in self.nodes:
                self._launch(node)
            deadline = time.monotonic() + self.ready_timeout
            everyone = frozenset(n.index for n in self.nodes)
            for node in self.nodes:
                self._wait(node, deadline, lambda md: everyone <= md.brokers, f"all {len(everyone)} brokers")
        except BaseException:
            self.stop()
            raise

    def kill(self, i: int) -> None:
        """SIGKILL node i (a crash: no controlled shutdown) and reap it."""
        node = self.nodes[i]
        if node.process is not None and node.running():
            node.process.kill()
            node.process.wait(timeout=30)
        node.paused = False

    def stop_node(self, i: int, timeout: float = 60.0) -> None:
        """Stop node i gracefully (SIGTERM: controlled shutdown, leaderships move away first) and reap it;
        SIGKILL if it has not exited within ``timeout`` seconds. A paused node is resumed first."""
        node = self.nodes[i]
        if node.process is not None and node.running():
            if node.paused:
                node.process.send_signal(signal.SIGCONT)
            node.process.terminate()
            try:
                node.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                node.process.kill()
                node.process.wait(timeout=30)
        node.paused = False

    def pause(self, i: int) -> None:
        """SIGSTOP node i: sockets stay open but nothing answers, like a hung or partitioned JVM."""
        node = self.nodes[i]
        if node.process is None or not node.running():
            raise RuntimeError(f"node {i} is not running")
        node.process.send_signal(signal.SIGSTOP)
        node.paused = True

    def resume(self, i: int) -> None:
        node = self.nodes[i]
        if node.process is not None and node.running():
            node.process.send_signal(signal.SIGCONT)
        node.paused = False

    def restart(self, i: int) -> None:
        """Start killed node i again on its data dir and ports; wait until it and every other running
        node list it in metadata."""
        node = self.nodes[i]
        if node.running():
            raise RuntimeError(f"node {i} is still running; kill({i}) first")
        self._launch(node)
        self.wait_listed(i)

    def wait_listed(self, i: int) -> None:
        """Wait until node i and every other running node list node i in metadata (after a restart, or a
        pause long enough for the node to be fenced)."""
        node = self.nodes[i]
        deadline = time.monotonic() + self.ready_timeout
        for other in [node, *(n for n in self.nodes if n is not node and n.running() and not n.paused)]:
            self._wait(other, deadline, lambda md: i in md.brokers, f"broker {i}")

    def metadata(self, topics: Sequence[str] = ()) -> Metadata:
        """Metadata from the first running, unpaused node that answers."""
        failures = []
        for node in self.nodes:
            if node.running() and not node.paused:
                try:
                    return metadata(node.port, topics)
                except OSError as exc:
                    failures.append(f"node {node.index}: {exc}")
        raise RuntimeError(f"no node answered a metadata request: {failures}")

    def leader_of(self, topic: str, partition: int) -> int:
        """Index of the node that metadata names as the partition's leader (-1: none right now)."""
        return self.metadata([topic]).topics[topic][partition].leader

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        replication_factor: int = 1,
        config: dict[str, str] | None = None,
    ) -> None:
        """Create through AdminClient (``config``: topic-level settings such as min.insync.replicas), then
        wait until every running node reports each partition with a leader and a full ISR, so the first
        produce does not race the metadata propagation."""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        topic = NewTopic(
            name, num_partitions=partitions, replication_factor=replication_factor, config=config or {}
        )
        futures = admin.create_topics(
            [topic],
            operation_timeout=30,
            request_timeout=30,
        )
        futures[name].result(timeout=40)
        deadline = time.monotonic() + self.ready_timeout

        def complete(md: Metadata) -> bool:
            parts = md.topics.get(name, {})
            return len(parts) == partitions and all(
                p.leader >= 0 and len(p.isr) == replication_factor for p in parts.values()
            )

        for node in self.nodes:
            if node.running() and not node.paused:
                self._wait(node, deadline, complete, f"topic {name} fully created", [name])

    def stop(self) -> None:
        """SIGKILL every node and reap it; safe to call twice and from a finalizer."""
        for node in self.nodes:
            if node.process is not None and node.process.poll() is None:
                node.process.kill()
                node.process.wait(timeout=30)
            node.paused = False
        atexit.unregister(self.stop)

    def log_tail(self, i: int, lines: int = 40) -> str:
        log = self.nodes[i].log
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else ""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _java(self, *args: str) -> list[str]:
        assert self._lib is not None
        java = java_bin()
        archive = cds_archive(self.root, java)
        cds = [f"-XX:SharedArchiveFile={archive}"] if archive is not None else []
        log4j = f"-Dlog4j2.configurationFile={LOG4J2}"
        return [java, *JVM_OPTS, *cds, log4j, "-cp", f"{self._lib}/*", *args]

    def _format(self) -> None:
        cluster_id = new_cluster_id()
        todo = [n for n in self.nodes if not (n.home / "data" / "meta.properties").exists()]
        running: list[tuple[_Node, subprocess.Popen[bytes]]] = []
        try:
            for node in todo:
                props = str(node.home / "server.properties")
                cmd = self._java("kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", props)
                with node.log.open("ab") as out:
                    running.append((node, subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)))
            failed = [node.index for node, proc in running if proc.wait(timeout=120) != 0]
        finally:
            for _, proc in running:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        if failed:
            raise RuntimeError(f"formatting node {failed[0]} failed:\n{self.log_tail(failed[0])}")

    def _launch(self, node: _Node) -> None:
        with node.log.open("ab") as out:
            out.write(f"=== start {time.strftime('%Y-%m-%dT%H:%M:%S')} ===\n".encode())
            out.flush()
            node.process = subprocess.Popen(
                self._java("kafka.Kafka", str(node.home / "server.properties")),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        node.paused = False

    def _wait(
        self,
        node: _Node,
        deadline: float,
        ready: Callable[[Metadata], bool],
        what: str,
        topics: Sequence[str] = (),
    ) -> None:
        last = "no answer yet"
        while time.monotonic() < deadline:
            if not node.running():
                raise RuntimeError(
                    f"node {node.index} exited while waiting for {what}:\n{self.log_tail(node.index)}"
                )
            try:
                md = metadata(node.port, topics, timeout=1.0)
                if ready(md):
                    return
                last = f"brokers {sorted(md.brokers)}, topics {md.topics}"
            except (OSError, struct.error) as exc:
                last = repr(exc)
            time.sleep(0.1)
        raise TimeoutError(
            f"node {node.index} (127.0.0.1:{node.port}) did not report {what} within "
            f"{self.ready_timeout:.0f}s (last: {last}); log tail:\n{self.log_tail(node.index)}"
        )
