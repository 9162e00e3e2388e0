"""Issue 30's peers side by side, in one run on the same MariaDB, broker, payload and backlog: the lean loop
(``lean.py``, the yardstick), the project's relay and Debezium (``debezium.py``), with the raw batched
``SENT`` update as the database's ceiling.

Per batch size and round, each peer drains a fresh backlog of ``rows`` (alternating, so a drifting machine
hits all alike): rows/s; CPU per message of the peer's own process (this process for the two loops, the
Connect JVM for Debezium), of the database server and of the broker; the binary log bytes written per
message while it ran. Then at the reference batch, per round: commit-to-Kafka latency p50/p99 at
``latency_rate`` rows/s (a writer commits a few rows every 10 ms; latency = the broker's log-append time
of the row's message - the row's ``created_at``, one clock), and what each costs idle per hour (machine-
wide: its own process, the database and the broker) over ``peer_idle_seconds``. The two loops poll every
50 ms when the table is empty, as they would if run for good; Debezium streams.

A Debezium drain is timed from resuming a stopped connector whose offsets sit just before the backlog's
inserts (as after a Connect outage) to the last message on the topic. Debezium marks nothing in the table,
so its figures have no ``SENT`` update in them: a status-tracking relay's work is bigger by that update.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from sqlalchemy import Engine, text

from tests.benchmarks.ceilings import update_ceiling_rate
from tests.benchmarks.common import (
    BOOTSTRAP,
    Result,
    Sizes,
    bench_config,
    fresh_backlog,
    insert_rows,
    make_producer,
    rate,
    scratch_db,
    temp_topics,
    truncate,
)
from tests.benchmarks.debezium import outbox_connector
from tests.benchmarks.latency import offered_load, percentile
from tests.benchmarks.lean import lean_producer, run_lean
from tests.benchmarks.processes import server_cpu_used, server_snapshot
from tests.benchmarks.project import check_drained, run_project

PEERS = ("lean", "relay", "debezium")
POLL_SECONDS = 0.05
PARTITIONS = 3
LOG_APPEND_TIME = {"message.timestamp.type": "LogAppendTime"}
HEADER = "outbox-message-id"
# A drain whose topic stopped growing for this long is over: Debezium 2.7.4 with the MariaDB adapter lost
# the first row written after its restart in every try here (``peer_debezium_lost_rows``).
STALL_SECONDS = 10.0


def _own_cpu() -> float:
    """This process's CPU-seconds, every thread (librdkafka's too)."""
    return time.process_time()


def binlog_bytes(engine: Engine) -> int:
    """Bytes in the server's binary logs so far (it must be on: Debezium reads it)."""
    with engine.connect() as conn:
        if not conn.execute(text("SELECT @@log_bin")).scalar():
            raise RuntimeError(
                "peers: the database's binary log is off; Debezium needs it (include/devstack/mysql.sh "
                "starts MariaDB with --log-bin; a server started before that must be restarted)"
            )
        return sum(int(row[1]) for row in conn.execute(text("SHOW BINARY LOGS")))


@dataclass
class Meter:
    """CPU-seconds and binary-log bytes spent between ``start`` and ``stop``."""

    engine: Engine
    own: Callable[[], float]
    seconds: float = 0.0
    cpu: dict[str, float | None] = field(default_factory=dict)
    binlog: int = 0
    lost: int = 0  # rows that never reached the topic

    def start(self) -> None:
        self._servers, self._own = server_snapshot(), self.own()
        self._binlog, self._started = binlog_bytes(self.engine), time.perf_counter()

    def stop(self) -> None:
        self.seconds = time.perf_counter() - self._started
        own, servers = self.own(), server_snapshot()
        self.binlog = binlog_bytes(self.engine) - self._binlog
        self.cpu = {"own": own - self._own, **server_cpu_used(self._servers, servers)}

    @property
    def total_cpu(self) -> float:
        return sum(v for v in self.cpu.values() if v is not None)


@contextmanager
def metered(engine: Engine, own: Callable[[], float]) -> Iterator[Meter]:
    meter = Meter(engine, own)
    meter.start()
    yield meter
    meter.stop()


@contextmanager
def end_offset_reader(topic: str) -> Iterator[Callable[[], dict[int, int]]]:
    """A reader of ``topic``'s end offsets (partition -> end) on one consumer held for the whole block. A
    client per read (bootstrap, metadata, librdkafka's threads) every 20 ms cost CPU inside the window
    measured while waiting on Debezium's drain."""
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "bench-peers-count"})

    def read() -> dict[int, int]:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in range(PARTITIONS)
        }

    try:
        yield read
    finally:
        consumer.close()


def end_offsets(topic: str) -> dict[int, int]:
    """``topic``'s end offsets now (one read: a client of its own)."""
    with end_offset_reader(topic) as read:
        return read()


def topic_count(topic: str) -> int:
    """Messages on ``topic`` (the sum of its partitions' end offsets)."""
    return sum(end_offsets(topic).values())


def wait_for_count(topic: str, expected: int, seconds: float, stall: float | None = None) -> int:
    """Wait until ``topic`` holds ``expected`` messages and return how many it holds; with ``stall``, stop
    early once the count has not grown for that long (a peer that lost rows never gets there). One client
    for the whole wait: it runs inside measured windows."""
    deadline, grown, last = time.monotonic() + seconds, time.monotonic(), -1
    with end_offset_reader(topic) as read:
        while (found := sum(read().values())) < expected:
            now = time.monotonic()
            if found != last:
                grown, last = now, found
            if stall is not None and now - grown > stall:
                return found
            if now > deadline:
                raise RuntimeError(
                    f"peers: {topic} holds {found} messages after {seconds:g}s, expected {expected}"
                )
            time.sleep(0.02)
    if found > expected:
        raise RuntimeError(f"peers: {topic} holds {found} messages, expected {expected} (duplicates)")
    return found


def last_append_time(topic: str) -> float:
    """The broker's log-append time (s) of ``topic``'s newest message."""
    consumer = Consumer({"bootstrap.servers": BOOTSTRAP, "group.id": "bench-peers-last"})
    newest = 0.0
    try:
        for p in range(PARTITIONS):
            end = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            if end == 0:
                continue
            consumer.assign([TopicPartition(topic, p, end - 1)])
            message = consumer.poll(10)
            if message is None or message.error():
                raise RuntimeError(f"peers: could not read the last message of {topic}[{p}]")
            newest = max(newest, message.timestamp()[1] / 1000)
    finally:
        consumer.close()
    return newest


class Peers:
    """The three peers on one database and one set of topics (one per peer, log-append timestamps)."""

    def __init__(self, engine: Engine, topics: dict[str, str], work: Path, sizes: Sizes) -> None:
        self.engine, self.topics, self.work, self.sizes = engine, topics, work, sizes
        self.lean = lean_producer()
        self.producers: dict[int, Any] = {}

    def _config(self, batch: int) -> Any:
        return bench_config(self.topics["relay"], batch)

    def _producer(self, batch: int) -> Any:
        if batch not in self.producers:
            self.producers[batch] = make_producer(self._config(batch))
        return self.producers[batch]

    def close(self) -> None:
        self.lean.flush(10)
        for producer in self.producers.values():
            producer.flush(10)

    # -- drains ------------------------------------------------------------------------------------------

    def drain(self, peer: str, batch: int) -> Meter:
        rows = self.sizes.rows
        if peer == "debezium":
            return self._drain_debezium(batch, rows)
        fresh_backlog(self.engine, self.topics[peer], rows)
        with metered(self.engine, _own_cpu) as meter:
            if peer == "lean":
                sent, _ = run_lean(self.engine, self.lean, self.topics["lean"], batch)
            else:
                stats, _ = run_project(self._config(batch), self.engine, self._producer(batch))
                sent = stats.published
        if peer == "relay":
            check_drained(self.engine, stats, rows, f"peers: relay batch {batch}")
        elif sent != rows:
            raise RuntimeError(f"peers: lean loop batch {batch} sent {sent} of {rows}")
        return meter

    def _drain_debezium(self, batch: int, rows: int) -> Meter:
        topic = self.topics["debezium"]
        truncate(self.engine)
        with outbox_connector(self.engine, batch, self.work) as worker:
            # Streaming is proven by one row arriving; then the connector stops and the backlog is written.
            before = topic_count(topic) + 1
            insert_rows(self.engine, topic, 1)
            wait_for_count(topic, before, 120)
            worker.stop()
            fresh_backlog(self.engine, topic, rows)
            with metered(self.engine, worker.cpu_seconds) as meter:
                resumed = time.time()
                worker.resume()
                found = wait_for_count(topic, before + rows, 600, stall=STALL_SECONDS)
            # Timed to the newest message's append (a stalled wait is not Debezium's time).
            meter.seconds = last_append_time(topic) - resumed
            meter.lost = before + rows - found
        return meter

    # -- steady traffic ----------------------------------------------------------------------------------

    def latencies(self, peer: str, batch: int) -> list[float]:
        """Commit-to-Kafka milliseconds of every row written at ``latency_rate`` rows/s."""
        topic, seconds = self.topics[peer], self.sizes.latency_seconds
        truncate(self.engine)
        since = end_offsets(topic)
        start = sum(since.values())
        written: list[int] = []
        if peer == "debezium":
            with outbox_connector(self.engine, batch, self.work):
                offered_load(self.engine, topic, self.sizes.latency_rate, seconds, written)
                wait_for_count(topic, start + written[0], 120)
        else:
            writer = threading.Thread(
                target=offered_load, args=(self.engine, topic, self.sizes.latency_rate, seconds, written)
            )
            writer.start()
            self._poll(peer, batch, seconds + 1.0)
            writer.join()
            self._catch_up(peer, batch)
            wait_for_count(topic, start + written[0], 30)
        with self.engine.connect() as conn:
            created = {
                m: float(t)
                for m, t in conn.execute(
                    text("SELECT message_id, UNIX_TIMESTAMP(created_at) FROM outbox_message")
                )
            }
        appended = _appended(topic, since)
        if len(appended) != written[0]:
            raise RuntimeError(f"peers: {peer} sent {len(appended)} of the {written[0]} rows written")
        return [(t - created[m]) * 1000 for m, t in appended.items()]

    def _poll(self, peer: str, batch: int, seconds: float) -> None:
        """Run a polling loop for ``seconds`` (every row it finds is relayed, then it polls again)."""
        if peer == "lean":
            run_lean(
                self.engine,
                self.lean,
                self.topics["lean"],
                batch,
                time.perf_counter() + seconds,
                POLL_SECONDS,
            )
        else:
            run_project(
                self._config(batch),
                self.engine,
                self._producer(batch),
                time_budget_seconds=seconds,
                poll_interval_seconds=POLL_SECONDS,
            )

    def _catch_up(self, peer: str, batch: int) -> None:
        """Relay what the polling loop left: on a loaded machine (a CI smoke run) it can fall behind the
        offered rate and end before the writer; those rows count with the latency they really had."""
        if peer == "lean":
            run_lean(self.engine, self.lean, self.topics["lean"], batch)
        else:
            run_project(self._config(batch), self.engine, self._producer(batch))

    def idle(self, peer: str, batch: int) -> Meter:
        """What ``peer_idle_seconds`` with nothing to relay cost."""
        truncate(self.engine)
        seconds = self.sizes.peer_idle_seconds
        if peer == "debezium":
            with (
                outbox_connector(self.engine, batch, self.work) as worker,
                metered(self.engine, worker.cpu_seconds) as meter,
            ):
                time.sleep(seconds)  # the measured window itself: an idle Debezium, streaming
            return meter
        with metered(self.engine, _own_cpu) as meter:
            self._poll(peer, batch, seconds)
        return meter


def _appended(topic: str, since: dict[int, int]) -> dict[str, float]:
    """message id -> the broker's log-append time (s) of every message of ``topic`` from ``since`` on."""
    consumer = Consumer(
        {"bootstrap.servers": BOOTSTRAP, "group.id": "bench-peers-read", "enable.auto.commit": False}
    )
    ends = end_offsets(topic)
    consumer.assign([TopicPartition(topic, p, since[p]) for p in range(PARTITIONS)])
    found: dict[str, float] = {}
    done = {p for p in range(PARTITIONS) if ends[p] <= since[p]}
    deadline = time.monotonic() + 120
    try:
        while len(done) < PARTITIONS:
            if time.monotonic() > deadline:
                raise RuntimeError(f"peers: could not read {topic} to its end in 120 s")
            for message in consumer.consume(1000, timeout=1):
                if message.error():
                    continue
                headers = dict(message.headers() or [])
                if HEADER in headers:
                    found[headers[HEADER].decode()] = message.timestamp()[1] / 1000
                if message.offset() + 1 >= ends[message.partition()]:
                    done.add(message.partition())
    finally:
        consumer.close()
    return found


def _rounded(values: dict[str, float | None]) -> dict[str, float | None]:
    return {k: None if v is None else round(v, 2) for k, v in values.items()}


def _per_message(meter: Meter, rows: int) -> dict[str, float | None]:
    return {name: None if cpu is None else cpu / rows * 1e6 for name, cpu in meter.cpu.items()}


def _drain_results(peer: str, batch: int, meters: list[Meter], rows: int) -> list[Result]:
    name = f"peer_{peer}"
    per = [_per_message(m, rows) for m in meters]
    results = [
        Result(f"{name}_drain", batch, "rows/s", [rate(rows, m.seconds) for m in meters]),
        Result(f"{name}_cpu_per_msg", batch, "us/msg", [p["own"] or 0.0 for p in per]),
        Result(f"{name}_total_cpu_per_msg", batch, "us/msg", [m.total_cpu / rows * 1e6 for m in meters]),
        Result(f"{name}_binlog_bytes_per_msg", batch, "B/msg", [m.binlog / rows for m in meters]),
        Result(f"{name}_lost_rows", batch, "rows", [float(m.lost) for m in meters]),
    ]
    for server in ("db", "broker"):
        values = [p[server] for p in per]
        if all(v is not None for v in values):
            results.append(
                Result(f"{name}_{server}_cpu_per_msg", batch, "us/msg", [float(v or 0) for v in values])
            )
    return results


def measure(sizes: Sizes) -> list[Result]:
    results: list[Result] = []
    with (
        scratch_db("peers") as engine,
        temp_topics("peers", len(PEERS), PARTITIONS, LOG_APPEND_TIME) as names,
        TemporaryDirectory(prefix="bench-connect-") as work,
    ):
        peers = Peers(engine, dict(zip(PEERS, names, strict=True)), Path(work), sizes)
        try:
            for batch in sizes.batches:
                drains: dict[str, list[Meter]] = {p: [] for p in PEERS}
                ceiling: list[float] = []
                for _ in range(sizes.repeats):
                    ceiling.append(update_ceiling_rate(engine, batch, sizes.rows))
                    for peer in PEERS:
                        drains[peer].append(peers.drain(peer, batch))
                results.append(Result("peer_update_ceiling", batch, "rows/s", ceiling))
                for peer in PEERS:
                    results.extend(_drain_results(peer, batch, drains[peer], sizes.rows))
            results.extend(_steady(peers, sizes))
        finally:
            peers.close()
    return results


def _steady(peers: Peers, sizes: Sizes) -> list[Result]:
    """Latency and idle cost per peer at the reference batch, ``repeats`` alternating rounds."""
    batch = sizes.ref_batch
    p50: dict[str, list[float]] = {p: [] for p in PEERS}
    p99: dict[str, list[float]] = {p: [] for p in PEERS}
    idle: dict[str, list[Meter]] = {p: [] for p in PEERS}
    for _ in range(sizes.repeats):
        for peer in PEERS:
            values = peers.latencies(peer, batch)
            p50[peer].append(statistics.median(values))
            p99[peer].append(percentile(values, 0.99))
        for peer in PEERS:
            idle[peer].append(peers.idle(peer, batch))
    results = []
    load = {"offered_rows_per_s": sizes.latency_rate, "seconds_per_run": sizes.latency_seconds}
    for peer in PEERS:
        results.append(Result(f"peer_{peer}_latency_p50", batch, "ms", p50[peer], load))
        results.append(Result(f"peer_{peer}_latency_p99", batch, "ms", p99[peer], load))
        hourly = [m.total_cpu * 3600 / m.seconds for m in idle[peer]]
        extra = {
            "seconds_per_run": sizes.peer_idle_seconds,
            "cpu_seconds_by_process": [_rounded(m.cpu) for m in idle[peer]],
        }
        results.append(Result(f"peer_{peer}_idle_cpu_per_hour", None, "CPU-s/h", hourly, extra))
    return results
