"""Fault scenarios on a three-broker Apache Kafka KRaft cluster (replication factor 3, min.insync.replicas 2).

1. ``kill -9`` of a partition leader while a batch is in flight;
2. a partition leader paused (SIGSTOP) for longer than the delivery timeout;
3. two of three brokers killed: acks=all cannot be satisfied, so the run must fail and mark nothing SENT;
4. a rolling restart (graceful SIGTERM stops) of all three brokers during a 100k-row backlog.

Each ends with the history checker (``tests/faults/history.py``) reading the topic back and comparing it
with the outbox, and records its figures in ``.run/fault-figures.jsonl``.

One cluster serves the whole module: starting three JVMs costs ~10 s on two cores, more than most
scenarios themselves. That is safe because every scenario uses its own topic and database, and the
``cluster`` fixture restores three healthy nodes (resumes paused ones, restarts dead ones, waits until
every node lists all three brokers) before and after each test, whatever state a failing test left.

Every relay producer bootstraps with the cluster's full list of brokers, as a production deployment
would. Failures are judged against the timeouts each run was configured with, never against speed.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import InfrastructureError
from outbox_relay.kafka.publisher import BrokerUnavailableError, KafkaPublisher, ProducerLike
from outbox_relay.models import RunStats
from outbox_relay.relay.engine import OutboxRelay, RunRequest
from tests.benchmarks.common import fill
from tests.conftest import BROKER, ROOT
from tests.faults.history import History, check_history, high_watermarks
from tests.faults.support import FAST_KAFKA, config_document, db_url, service
from tests.integration.kafka_tools import producer
from tests.integration.outbox_rows import run_relay
from tests.kafka_cluster import KafkaCluster, metadata

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        BROKER != "kafka",
        reason=f"needs Apache Kafka brokers (BROKER=kafka, a JDK 17+); this run has BROKER={BROKER!r}",
    ),
    # Under `pytest -n N --dist loadgroup` the module's tests share one worker, hence one cluster.
    pytest.mark.xdist_group("kafka_cluster"),
]
CLUSTER_LABEL = "kafka, 3 brokers"  # the figures file tells these runs from the single node's

NODES, PARTITIONS, REPLICATION, MIN_ISR = 3, 3, 3, 2
# A run that fails must do so within the timeouts it was given, plus slack for a claim and the purge.
FAST_BOUND_SECONDS = FAST_KAFKA["delivery_timeout_ms"] / 1000 + FAST_KAFKA["flush_timeout_seconds"] + 5
# Long enough that the idempotent producer outlives a leader failover (fencing after
# broker.session.timeout.ms = 4 s, then a new leader) and a graceful leadership move.
PATIENT_KAFKA = {"delivery_timeout_ms": 20_000, "flush_timeout_seconds": 25}
MAX_RUNS = 6  # relay runs a scenario may need to converge (each one is bounded by its own timeouts)
HEAL_SECONDS = 90.0


# ---------------------------------------------------------------------------------------------- cluster


@pytest.fixture(scope="module")
def kafka3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaCluster]:
    with KafkaCluster(NODES, tmp_path_factory.mktemp("kafka3")) as cluster:
        yield cluster


@pytest.fixture
def cluster(kafka3: KafkaCluster) -> Iterator[KafkaCluster]:
    """The module's cluster with three healthy nodes, healed again after the test."""
    heal(kafka3)
    yield kafka3
    heal(kafka3)


def all_brokers_listed(cluster: KafkaCluster) -> bool:
    """Every node answers metadata on its own port and lists all brokers (so none is fenced)."""
    everyone = frozenset(range(NODES))
    try:
        return all(everyone <= metadata(n.port, timeout=1.0).brokers for n in cluster.nodes)
    except (OSError, ValueError):
        return False


def wait_until(condition: Callable[[], bool], what: str, timeout: float) -> float:
    """Poll ``condition``; seconds it took. Bounded: fails the test after ``timeout``."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"timed out after {timeout:.0f}s waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def heal(cluster: KafkaCluster) -> None:
    """Resume paused nodes, restart dead ones (in parallel), wait until all brokers are back."""
    for node in cluster.nodes:
        if node.paused:
            cluster.resume(node.index)
    down = [n.index for n in cluster.nodes if not n.running()]
    restart_all(cluster, down)
    wait_until(lambda: all_brokers_listed(cluster), "all three brokers listed by every node", HEAL_SECONDS)


def restart_all(cluster: KafkaCluster, nodes: list[int]) -> float:
    """Restart ``nodes`` at the same time (a JVM start costs seconds); seconds until all rejoined."""
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, len(nodes))) as pool:
        list(pool.map(cluster.restart, nodes))
    return time.monotonic() - started


def create_topic(cluster: KafkaCluster, name: str) -> None:
    """Three partitions, replication factor 3, min.insync.replicas 2 set on the topic itself."""
    cluster.create_topic(name, PARTITIONS, REPLICATION, config={"min.insync.replicas": str(MIN_ISR)})
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    resource = ConfigResource("topic", name)
    configs = admin.describe_configs([resource])[resource].result(timeout=30)
    assert configs["min.insync.replicas"].value == str(MIN_ISR)


def isr_complete(cluster: KafkaCluster, topic: str) -> bool:
    parts = cluster.metadata([topic]).topics.get(topic, {})
    return len(parts) == PARTITIONS and all(len(p.isr) == REPLICATION for p in parts.values())


# ------------------------------------------------------------------------------------------------ relay


class FaultyProducer:
    """The relay's producer with a fault injected once, in the batch that starts after ``after`` messages:

    * ``in_flight``: during that batch's ``flush``, as soon as its first message was acknowledged, so the
      fault hits a batch partly acknowledged and partly in flight (``acked_at_fault`` says how much of it
      was acknowledged; if the whole batch was, the fault hits the next one before it is produced);
    * otherwise: just before the batch's first message is produced, so all of it is sent after the fault.
    """

    def __init__(self, inner: ProducerLike, fault: Callable[[], None], after: int, in_flight: bool) -> None:
        self.inner, self.after, self.in_flight = inner, after, in_flight
        self.fault: Callable[[], None] | None = fault
        self.produced = 0
        self.missed = False
        self.fired_at: float | None = None  # monotonic time the fault had been applied
        self.acked_at_fault: int | None = None  # messages of the faulted batch settled before it

    def _settled(self) -> int:
        """Messages produced so far that librdkafka is done with (acknowledged, or failed and reported):
        the relay's producers report failures only, so this counts the queue, not the reports."""
        return self.produced - len(self.inner)  # type: ignore[arg-type]

    def _fire(self) -> None:
        if self.fault is not None:
            fault, self.fault = self.fault, None
            self.acked_at_fault = self._settled() - self.after
            fault()
            self.fired_at = time.monotonic()

    def produce(self, topic: str, *args: Any, **kwargs: Any) -> None:
        if (not self.in_flight and self.produced >= self.after) or self.missed:
            self._fire()
        self.produced += 1
        self.inner.produce(topic, *args, **kwargs)

    def poll(self, timeout: float = -1) -> int:
        return self.inner.poll(timeout)

    def flush(self, timeout: float = -1) -> int:
        if self.in_flight and self.produced > self.after and self.fault is not None:
            deadline = time.monotonic() + 5
            while self._settled() <= self.after and time.monotonic() < deadline:
                self.inner.poll(0.001)  # until the batch's first message is settled
            if self._settled() < self.produced:
                self._fire()
            else:  # the whole batch was acknowledged at once: hit the next one before it is produced
                self.missed = True
        return self.inner.flush(timeout)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.inner.purge(in_queue=in_queue, in_flight=in_flight, blocking=blocking)


def faulty_relay(
    config: ServiceConfig,
    engine: Engine,
    bootstrap: str,
    fault: Callable[[], None],
    after: int,
    in_flight: bool,
) -> tuple[OutboxRelay, FaultyProducer]:
    """The relay as a task builds it (its delivery and flush timeouts), with a fault in its producer."""
    inner = producer(
        bootstrap,
        **{"message.timeout.ms": config.kafka.delivery_timeout_ms, "linger.ms": config.kafka.linger_ms},
    )
    faulty = FaultyProducer(inner, fault, after, in_flight)
    publisher = KafkaPublisher(faulty, config.kafka.flush_timeout_seconds)
    return OutboxRelay(config, engine, publisher), faulty


def status_counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, COUNT(*) FROM outbox_message GROUP BY status")).all()
    return {str(status): int(n) for status, n in rows}


def ids(engine: Engine, where: str = "TRUE", limit: int | None = None) -> list[int]:
    sql = f"SELECT id FROM outbox_message WHERE {where} ORDER BY id"
    with engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(text(sql + (f" LIMIT {limit}" if limit else "")))]


@dataclass
class Convergence:
    """Follow-up runs until no row is NEW: what each did, and how many failed."""

    stats: list[dict[str, Any]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def converge(config: ServiceConfig, engine: Engine, bootstrap: str, label: str) -> Convergence:
    """Rerun the relay in-process until no row is NEW, at most MAX_RUNS times (a run that meets a
    cluster still electing leaders fails with BrokerUnavailableError and is simply retried)."""
    done = Convergence()
    for n in range(MAX_RUNS):
        if status_counts(engine).get("NEW", 0) == 0:
            return done
        try:
            stats: RunStats = run_relay(config, engine, run_id=f"{label}-{n}", bootstrap=bootstrap)
            done.stats.append(stats.as_dict())
        except BrokerUnavailableError as exc:
            done.errors.append(str(exc)[:200])
            time.sleep(1)
    assert status_counts(engine).get("NEW", 0) == 0, (status_counts(engine), done)
    return done


# Answers a partition gives right after a leader election, until the new leader's high watermark caught up.
ELECTION_CODES = frozenset(
    {KafkaError.OFFSET_NOT_AVAILABLE, KafkaError.LEADER_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION}
)


def settled_watermarks(cluster: KafkaCluster, topic: str, timeout: float = 30.0) -> int:
    """The topic's record count (sum of high watermarks), retried while a new leader is settling in."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return high_watermarks([topic], cluster.bootstrap)
        except KafkaException as exc:
            if exc.args[0].code() not in ELECTION_CODES or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def history_of(engine: Engine, topic: str, cluster: KafkaCluster) -> tuple[History, int]:
    """The checker's figures, plus the broker's record count (high watermarks) they must account for.

    First waits until every replica is back in its ISR and the leaders answer offset requests (a leader
    elected after a restart says OFFSET_NOT_AVAILABLE until its high watermark caught up). The checker's
    reader stops after 1.5 s without a record; on a loaded machine it could stop early and
    report records as lost. Reading again when it saw fewer records than the high watermarks say the
    topic holds only repeats the read; it never changes what the broker or the outbox hold.
    """
    wait_until(
        lambda: isr_complete(cluster, topic), f"every replica of {topic} back in its ISR", HEAL_SECONDS
    )
    on_broker = settled_watermarks(cluster, topic)
    for _ in range(3):
        history = check_history(engine, [topic], cluster.bootstrap)
        if history.published_messages >= on_broker:
            break
    return history, on_broker


def duplicate_bound(batch: int, failed_runs: int) -> int:
    """Duplicates a scenario may show: docs/semantics.md ("Guarantees") bounds an interrupted pipelined run at two
    batches acked (or written) but not yet marked SENT. A run that *fails* cleanly leaves less (it stops
    at the first batch with an unacknowledged message, after marking that batch's acked rows and every
    earlier batch SENT, and never produces the batch it claimed next), so the documented bound per failed
    run is generous. A run that completes leaves none: the idempotent producer retries its in-flight
    messages to the new leader with their original sequence numbers, and the broker drops copies it
    already holds."""
    return 2 * batch * failed_runs


# ------------------------------------------------------------------------------------------ scenario 1

LEADER_ROWS, LEADER_BATCH, LEADER_AFTER_BATCHES = 20_000, 500, 3


def test_kill_9_of_the_partition_leader_mid_batch_loses_nothing_and_keeps_order(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    cluster: KafkaCluster,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("leader-kill")
    create_topic(cluster, topic)
    fill(db_engine, topic, LEADER_ROWS)  # 1,000 keys, spread over the three partitions
    config = service(topic, batch_size=LEADER_BATCH, time_budget_seconds=120, kafka=PATIENT_KAFKA)
    victim = cluster.leader_of(topic, 0)
    relay, faulty = faulty_relay(
        config,
        db_engine,
        cluster.bootstrap,
        lambda: cluster.kill(victim),
        LEADER_AFTER_BATCHES * LEADER_BATCH,
        True,
    )

    started = time.monotonic()
    error: BrokerUnavailableError | None = None
    try:  # either the producer rides out the failover (idempotent retries) or the run fails clearly
        first = relay.run(RunRequest(run_id="leader-kill")).as_dict()
    except BrokerUnavailableError as exc:
        error, first = exc, {}
    run_seconds = time.monotonic() - started
    assert faulty.fired_at is not None, "the leader was never killed"
    # A surviving in-sync replica takes over partition 0 (the controller fences the dead node after 4 s).
    wait_until(lambda: cluster.leader_of(topic, 0) not in (victim, -1), "a new leader of partition 0", 30)
    new_leader = cluster.leader_of(topic, 0)

    follow_up = converge(config, db_engine, cluster.bootstrap, "after-leader-kill")
    rejoin_seconds = restart_all(cluster, [victim])
    history, on_broker = history_of(db_engine, topic, cluster)
    failed_runs = (error is not None) + len(follow_up.errors)
    record_figures(
        history.figures(),
        broker=CLUSTER_LABEL,
        killed_node=victim,
        acked_of_batch_at_kill=faulty.acked_at_fault,
        new_leader=new_leader,
        first_run=first or f"failed after {run_seconds:.1f}s: {str(error)[:200]}",
        first_run_s=round(run_seconds, 1),
        follow_up_runs=follow_up.stats,
        follow_up_errors=follow_up.errors,
        restart_s=round(rejoin_seconds, 1),
        records_on_broker=on_broker,
        duplicate_bound=duplicate_bound(LEADER_BATCH, failed_runs),
    )
    assert history.rows == LEADER_ROWS and history.published_messages == on_broker
    history.assert_converged(max_duplicates=duplicate_bound(LEADER_BATCH, failed_runs))


def test_exactly_once_kill_9_of_the_partition_leader_mid_run_duplicates_nothing(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    cluster: KafkaCluster,
    record_figures: Callable[..., None],
) -> None:
    """Scenario 1 with ``delivery: exactly_once``: the leader of partition 0 is killed (SIGKILL) once three
    batches are SENT, while the relay's transactions go on; whatever the run does then (ride out the
    failover, or fail and be run again), nothing is published twice."""
    topic = topic_name("leader-kill-eos")
    create_topic(cluster, topic)
    fill(db_engine, topic, LEADER_ROWS)
    kafka = {
        **PATIENT_KAFKA,
        "transaction_timeout_ms": 30_000,
        "transactional_id_prefix": topic,
        "replication_factor": 3,
    }
    config = service(
        topic, batch_size=LEADER_BATCH, time_budget_seconds=120, delivery="exactly_once", kafka=kafka
    )
    victim = cluster.leader_of(topic, 0)

    def kill_mid_run() -> float:
        wait_until(
            lambda: status_counts(db_engine).get("SENT", 0) >= LEADER_AFTER_BATCHES * LEADER_BATCH,
            "3 batches",
            60,
        )
        cluster.kill(victim)
        return time.monotonic()

    with ThreadPoolExecutor(max_workers=1) as pool:
        killed = pool.submit(kill_mid_run)
        error: Exception | None = None
        try:
            first = run_relay(
                config, db_engine, run_id="leader-kill-eos", bootstrap=cluster.bootstrap
            ).as_dict()
        except InfrastructureError as exc:
            error, first = exc, {}
        killed.result()
    wait_until(lambda: cluster.leader_of(topic, 0) not in (victim, -1), "a new leader of partition 0", 30)
    follow_up = Convergence()
    for n in range(MAX_RUNS):
        if status_counts(db_engine).get("NEW", 0) == 0:
            break
        try:
            follow_up.stats.append(
                run_relay(config, db_engine, run_id=f"eos-after-{n}", bootstrap=cluster.bootstrap).as_dict()
            )
        except InfrastructureError as exc:
            follow_up.errors.append(str(exc)[:200])
            time.sleep(1)
    restart_all(cluster, [victim])
    history, in_log = history_of(db_engine, topic, cluster)
    record_figures(
        history.figures(),
        broker=CLUSTER_LABEL,
        delivery="exactly_once",
        log_offsets=in_log,  # aborted transactions' records and commit markers included
        killed_node=victim,
        first_run=first or f"failed: {str(error)[:200]}",
        follow_up_runs=follow_up.stats,
        follow_up_errors=follow_up.errors,
    )
    assert history.rows == LEADER_ROWS and status_counts(db_engine) == {"SENT": LEADER_ROWS}
    history.assert_converged(max_duplicates=0)
    assert history.distinct_published == history.published_messages == LEADER_ROWS


# ------------------------------------------------------------------------------------------ scenario 2

PAUSE_ROWS, PAUSE_BATCH, PAUSE_AFTER_BATCHES, PAUSE_SECONDS = 5_000, 250, 2, 10.0


def test_leader_paused_longer_than_the_delivery_timeout_fails_the_run_and_marks_nothing_unacked(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    cluster: KafkaCluster,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("leader-pause")
    create_topic(cluster, topic)
    fill(db_engine, topic, PAUSE_ROWS)
    config = service(topic, batch_size=PAUSE_BATCH, time_budget_seconds=60)  # FAST_KAFKA: 3 s / 4 s
    victim = cluster.leader_of(topic, 0)
    relay, faulty = faulty_relay(
        config,
        db_engine,
        cluster.bootstrap,
        lambda: cluster.pause(victim),
        PAUSE_AFTER_BATCHES * PAUSE_BATCH,
        True,
    )

    # The paused node leads partition 0 and follows the other two, so no partition can complete acks=all
    # until the controller fences it (4 s): the batch in flight times out first (3 s).
    with pytest.raises(BrokerUnavailableError, match="Is the broker reachable") as failure:
        relay.run(RunRequest(run_id="leader-pause"))
    assert faulty.fired_at is not None
    failed_after = time.monotonic() - faulty.fired_at
    assert failed_after < FAST_BOUND_SECONDS, failed_after

    # Keep it paused for PAUSE_SECONDS in all; meanwhile the live nodes should fence it.
    fenced_after: float | None = None
    while (paused := time.monotonic() - faulty.fired_at) < PAUSE_SECONDS:
        if fenced_after is None and victim not in cluster.metadata().brokers:
            fenced_after = paused
        time.sleep(0.1)
    cluster.resume(victim)
    rejoined_after = wait_until(
        lambda: all_brokers_listed(cluster), "the resumed node to rejoin", HEAL_SECONDS
    )

    before, _ = history_of(db_engine, topic, cluster)
    assert before.sent_without_ack == 0, before.figures()  # every SENT row is on the broker
    sent_before = status_counts(db_engine).get("SENT", 0)
    assert PAUSE_AFTER_BATCHES * PAUSE_BATCH <= sent_before < PAUSE_ROWS  # the batches acked before it

    follow_up = converge(config, db_engine, cluster.bootstrap, "after-pause")
    history, on_broker = history_of(db_engine, topic, cluster)
    failed_runs = 1 + len(follow_up.errors)
    record_figures(
        history.figures(),
        broker=CLUSTER_LABEL,
        paused_node=victim,
        acked_of_batch_at_pause=faulty.acked_at_fault,
        paused_s=PAUSE_SECONDS,
        run_failed_after_s=round(failed_after, 1),
        fenced_after_s=None if fenced_after is None else round(fenced_after, 1),
        rejoined_after_resume_s=round(rejoined_after, 1),
        error=str(failure.value)[:200],
        sent_at_failure=sent_before,
        follow_up_runs=follow_up.stats,
        follow_up_errors=follow_up.errors,
        records_on_broker=on_broker,
        duplicate_bound=duplicate_bound(PAUSE_BATCH, failed_runs),
    )
    assert history.rows == PAUSE_ROWS and history.published_messages == on_broker
    history.assert_converged(max_duplicates=duplicate_bound(PAUSE_BATCH, failed_runs))


# ------------------------------------------------------------------------------------------ scenario 3

QUORUM_ROWS, QUORUM_BATCH, QUORUM_AFTER_BATCHES = 2_000, 200, 2


def test_two_of_three_brokers_down_fails_the_run_in_bounded_time_and_marks_nothing_sent(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    cluster: KafkaCluster,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("two-down")
    create_topic(cluster, topic)
    fill(db_engine, topic, QUORUM_ROWS)
    config = service(topic, batch_size=QUORUM_BATCH, time_budget_seconds=60)  # FAST_KAFKA: 3 s / 4 s
    leader = cluster.leader_of(topic, 0)
    victims = [leader, (leader + 1) % NODES]  # partition 0's leader and one follower; one node survives

    def two_down() -> None:
        for node in victims:
            cluster.kill(node)

    before_kill = QUORUM_AFTER_BATCHES * QUORUM_BATCH
    relay, faulty = faulty_relay(config, db_engine, cluster.bootstrap, two_down, before_kill, False)
    # Every message produced after the kill needs acks from an ISR of which only one member is alive, and
    # the controller quorum (2 of 3 voters down) cannot shrink any ISR: none can be acknowledged.
    expected = f"Kafka did not acknowledge {QUORUM_BATCH} of {QUORUM_BATCH} messages"
    with pytest.raises(BrokerUnavailableError, match=expected) as failure:
        relay.run(RunRequest(run_id="two-down"))
    assert faulty.fired_at is not None
    failed_after = time.monotonic() - faulty.fired_at
    assert failed_after < FAST_BOUND_SECONDS, failed_after
    assert "Is the broker reachable" in str(failure.value)
    # Exactly the rows acknowledged before the kill are SENT; none of the batch attempted after it.
    assert ids(db_engine, "status = 'SENT'") == ids(db_engine, limit=before_kill)

    rejoin_seconds = restart_all(cluster, victims)
    before, _ = history_of(db_engine, topic, cluster)
    assert before.sent_without_ack == 0, before.figures()

    follow_up = converge(config, db_engine, cluster.bootstrap, "after-two-down")
    history, on_broker = history_of(db_engine, topic, cluster)
    failed_runs = 1 + len(follow_up.errors)
    record_figures(
        history.figures(),
        broker=CLUSTER_LABEL,
        killed_nodes=victims,
        run_failed_after_s=round(failed_after, 1),
        error=str(failure.value)[:200],
        sent_at_failure=before_kill,
        written_but_unacked_before_restart=before.published_messages - before_kill,
        restart_both_s=round(rejoin_seconds, 1),
        follow_up_runs=follow_up.stats,
        follow_up_errors=follow_up.errors,
        records_on_broker=on_broker,
        duplicate_bound=duplicate_bound(QUORUM_BATCH, failed_runs),
    )
    assert history.rows == QUORUM_ROWS and history.published_messages == on_broker
    history.assert_converged(max_duplicates=duplicate_bound(QUORUM_BATCH, failed_runs))


# ------------------------------------------------------------------------------------------ scenario 4

# The project's default batch size. Unthrottled, the relay drains 100k rows in ~15 s, faster than three
# graceful restarts (~8 s each: stop, JVM start, ISR catch-up), so each run also sleeps 0.2 s per batch
# (relay_process's "slow_batches") to keep the backlog alive through the whole roll.
ROLL_ROWS, ROLL_BATCH = 100_000, 1_000
CHILD_SECONDS = 150.0  # one child run: its 120 s time budget plus its last batch's flush timeout


@dataclass
class RelayRuns:
    """Relay runs in child processes (``tests.faults.relay_process``), one at a time, started again while
    rows are NEW, at most MAX_RUNS. Their output goes to files: a pipe nobody reads while a node restarts
    could fill up and stall the child."""

    engine: Engine
    bootstrap: str
    document: dict[str, Any]
    logs: Path
    outcomes: list[dict[str, Any]] = field(default_factory=list)
    child: subprocess.Popen[bytes] | None = None
    started: float = 0.0

    @property
    def failed(self) -> int:
        return sum(1 for o in self.outcomes if not o["ok"])

    def _paths(self) -> tuple[Path, Path]:
        n = len(self.outcomes)
        return self.logs / f"run-{n}.out", self.logs / f"run-{n}.err"

    def start(self) -> None:
        spec = {"url": db_url(self.engine), "bootstrap": self.bootstrap, "config": self.document}
        spec.update(run_id=f"rolling-{len(self.outcomes)}", fault="slow_batches")
        out, err = self._paths()
        with out.open("wb") as stdout, err.open("wb") as stderr:
            self.child = subprocess.Popen(
                [sys.executable, "-m", "tests.faults.relay_process", json.dumps(spec)],
                cwd=ROOT,
                stdout=stdout,
                stderr=stderr,
            )
        self.started = time.monotonic()

    def reap(self, timeout: float) -> None:
        """Wait up to ``timeout`` for the child; one past CHILD_SECONDS is killed (counted as failed)."""
        assert self.child is not None
        try:
            self.child.wait(max(0.0, min(timeout, self.started + CHILD_SECONDS - time.monotonic())))
        except subprocess.TimeoutExpired:
            if time.monotonic() - self.started < CHILD_SECONDS:
                return  # still running, within its bound
            self.child.kill()
            self.child.wait(30)
        out, err = (p.read_text(errors="replace").strip() for p in self._paths())
        ok = self.child.returncode == 0
        outcome = (
            json.loads(out.splitlines()[-1]) if ok else {"error": (err or "killed").splitlines()[-1][:200]}
        )
        self.outcomes.append({"ok": ok, "seconds": round(time.monotonic() - self.started, 1), **outcome})
        self.child = None

    def keep_going(self) -> None:
        """Reap a finished child; start the next one if rows are still NEW."""
        if self.child is not None:
            self.reap(0)
        if self.child is None and len(self.outcomes) < MAX_RUNS and status_counts(self.engine).get("NEW", 0):
            self.start()

    def drain(self, timeout: float) -> None:
        """Keep runs going until no row is NEW, the run limit is reached or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.keep_going()
            if self.child is None:
                return
            self.reap(max(0.0, deadline - time.monotonic()))

    def stop(self) -> None:
        if self.child is not None and self.child.poll() is None:
            self.child.kill()
            self.child.wait(30)


@pytest.fixture
def relay_runs(
    db_engine: Engine, cluster: KafkaCluster, tmp_path: Path
) -> Iterator[Callable[[str], RelayRuns]]:
    made: list[RelayRuns] = []

    def make(topic: str) -> RelayRuns:
        document = config_document(topic, batch_size=ROLL_BATCH, time_budget_seconds=120, kafka=PATIENT_KAFKA)
        made.append(RelayRuns(db_engine, cluster.bootstrap, document, tmp_path))
        return made[-1]

    yield make
    for runs in made:
        runs.stop()


def test_rolling_restart_of_all_brokers_during_a_100k_backlog_loses_nothing(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    cluster: KafkaCluster,
    relay_runs: Callable[[str], RelayRuns],
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name("rolling")
    create_topic(cluster, topic)
    fill(db_engine, topic, ROLL_ROWS)
    runs = relay_runs(topic)
    began = time.monotonic()
    runs.start()
    going: Callable[[], bool] = lambda: (  # noqa: E731
        status_counts(db_engine).get("SENT", 0) >= 2 * ROLL_BATCH
        or (runs.child is not None and runs.child.poll() is not None)  # it failed: keep_going() reports it
    )
    wait_until(going, "the relay to get going", 60)

    steps: list[dict[str, Any]] = []
    for node in range(NODES):  # one at a time, each back in every ISR before the next goes down
        runs.keep_going()
        new_rows = status_counts(db_engine).get("NEW", 0)
        t0 = time.monotonic()
        cluster.stop_node(node)  # SIGTERM: controlled shutdown moves its leaderships away first
        t1 = time.monotonic()
        cluster.restart(node)
        t2 = time.monotonic()
        in_isr = wait_until(lambda: isr_complete(cluster, topic), f"node {node} back in every ISR", 60)
        steps.append(
            {"node": node, "new_rows_at_stop": new_rows, "relay_running": runs.child is not None,
             "stop_s": round(t1 - t0, 1), "restart_s": round(t2 - t1, 1), "isr_s": round(in_isr, 1)}
        )  # fmt: skip
    rolled = time.monotonic() - began
    runs.drain(timeout=MAX_RUNS * CHILD_SECONDS)
    relayed = time.monotonic() - began
    assert status_counts(db_engine).get("NEW", 0) == 0, runs.outcomes

    history, on_broker = history_of(db_engine, topic, cluster)
    record_figures(
        history.figures(),
        broker=CLUSTER_LABEL,
        rolling_restart=steps,
        rolling_restart_s=round(rolled, 1),
        relayed_all_s=round(relayed, 1),
        runs=runs.outcomes,
        records_on_broker=on_broker,
        duplicate_bound=duplicate_bound(ROLL_BATCH, runs.failed),
    )
    assert steps[0]["new_rows_at_stop"] > 0  # the backlog was still being relayed when the roll began
    assert history.rows == ROLL_ROWS and history.published_messages == on_broker
    history.assert_converged(max_duplicates=duplicate_bound(ROLL_BATCH, runs.failed))
