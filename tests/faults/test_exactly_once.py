"""Exactly-once delivery under process death and split brain, on Apache Kafka: the relay is killed with
SIGKILL between the Kafka commit and the database commit, at random points of a 200,000-row backlog, and a
paused relay is overtaken by a second one. The history checker reads every topic back with kafka-python in
read_committed mode and expects no row lost, none published twice, per-key order kept."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.writer import OutboxMessage, write_outbox
from tests.faults.conftest import Broker
from tests.faults.history import check_history
from tests.faults.support import config_document, service, spawn
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import run_relay, statuses
from tests.stack import BROKER

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(BROKER != "kafka", reason="Kafka transactions (Tansu refuses the mode)"),
]

TIMEOUTS = {"delivery_timeout_ms": 5000, "transaction_timeout_ms": 5000, "flush_timeout_seconds": 5}


def _exactly_once(topic: str, **fields: Any) -> dict[str, Any]:
    """A fault test's service delivering exactly once, with a prefix of its own (ids and progress keys)."""
    kafka = {**TIMEOUTS, "transactional_id_prefix": topic}
    return config_document(topic, delivery="exactly_once", kafka=kafka, **fields)


def _backlog(engine: Engine, topic: str, rows: int, keys: int = 64) -> None:
    """The writer's multi-row INSERT, 10,000 rows at a time."""
    with engine.begin() as conn:
        for start in range(0, rows, 10_000):
            write_outbox(
                conn,
                [
                    OutboxMessage(topic, f"key-{n % keys}", "OrderLine", {"n": n})
                    for n in range(start, min(rows, start + 10_000))
                ],
            )


def _sent(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(
            conn.execute(text("SELECT COUNT(*) FROM outbox_message WHERE status = 'SENT'")).scalar_one()
        )


def _killed(child: subprocess.Popen[str]) -> None:
    assert child.poll() is None, child.communicate()[1][-3000:]
    child.send_signal(signal.SIGKILL)
    child.wait(10)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "serial"])
def test_kill_9_between_the_kafka_commit_and_the_database_commit_publishes_nothing_twice(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    tmp_path: Path,
    record_figures: Callable[..., None],
    pipelining: bool,
) -> None:
    """The one window in which at-least-once delivery duplicates a batch, reached deterministically: the
    process dies (SIGKILL) right after batch 3's transaction committed in Kafka, its SENT update written
    but not committed."""
    topic = topic_name("eos_kill")
    create_topics(topic, bootstrap=broker.bootstrap)
    _backlog(db_engine, topic, 2000, keys=7)
    document = _exactly_once(topic, batch_size=200, pipelining=pipelining)
    flag = tmp_path / "died"
    child = spawn(
        db_engine, broker.bootstrap, document, fault="die_after_kafka_commit", at_batch=3, flag=str(flag)
    )
    child.wait(120)
    assert child.returncode == -signal.SIGKILL and flag.read_text() == "3", (
        child.stderr.read()[-3000:] if child.stderr else ""
    )
    assert _sent(db_engine) == 400  # batches 1 and 2; batch 3 is in Kafka only (and with pipelining maybe 4)

    stats = run_relay(_service(document), db_engine, bootstrap=broker.bootstrap)

    assert stats.recovered in ({200, 400} if pipelining else {200})
    history = check_history(db_engine, [topic], broker.bootstrap, consume=True)
    record_figures(history.figures(), recovered=stats.recovered)
    history.assert_converged(max_duplicates=0)
    assert history.published_messages == history.distinct_published == 2000


@pytest.mark.slow
@pytest.mark.parametrize(
    ("delivery", "seed"),
    [("exactly_once", 1), ("exactly_once", 2), ("exactly_once", 3), ("at_least_once", 1)],
)
def test_kill_9_at_random_points_of_a_200k_backlog_loses_and_duplicates_nothing(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    wait_for: Callable[..., None],
    record_figures: Callable[..., None],
    delivery: str,
    seed: int,
) -> None:
    """Two relay processes in a row are killed at a random moment of their run (claim, produce, commit,
    SENT update, anywhere); a third run finishes. Exactly once: no duplicate. At-least-once, for
    comparison: up to two batches of duplicates per kill (pipelined), 8,000 here."""
    rows, rng = 200_000, random.Random(seed)
    topic = topic_name("eos_random")
    create_topics(topic, partitions=8, bootstrap=broker.bootstrap)
    _backlog(db_engine, topic, rows)
    document = _exactly_once(topic, batch_size=2000, time_budget_seconds=600)
    if delivery == "at_least_once":
        document = config_document(topic, batch_size=2000, time_budget_seconds=600, kafka=dict(TIMEOUTS))
    kills = []
    for attempt in range(2):
        before = _sent(db_engine)
        child = spawn(db_engine, broker.bootstrap, document, run_id=f"doomed{attempt}")
        wait_for(
            lambda before=before, child=child: _sent(db_engine) > before or child.poll() is not None,
            "a first batch",
        )
        time.sleep(rng.uniform(0.0, 2.0))  # the random point: wherever the run is by then
        _killed(child)
        kills.append(_sent(db_engine))

    stats = run_relay(_service(document), db_engine, bootstrap=broker.bootstrap)

    assert _sent(db_engine) == rows
    history = check_history(db_engine, [topic], broker.bootstrap)
    record_figures(
        history.figures(), delivery=delivery, seed=seed, sent_at_kills=kills, recovered=stats.recovered
    )
    bound = 0 if delivery == "exactly_once" else 2 * 2 * 2000
    history.assert_converged(max_duplicates=bound)
    assert history.distinct_published == rows


@pytest.mark.parametrize("where", ["in_transaction", "anywhere"])
def test_a_paused_relay_is_fenced_by_the_next_and_commits_nothing_when_it_wakes(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    tmp_path: Path,
    wait_for: Callable[..., None],
    record_figures: Callable[..., None],
    where: str,
) -> None:
    """A zombie: relay A stops (SIGSTOP) for longer than its transaction timeout, either with batch 3's
    Kafka transaction open or wherever it is after three batches; the database drops its sessions (as after
    a network split), so relay B gets the relay lock, fences A and relays everything. Then A wakes: its Kafka
    commit is refused (or its database work is gone), and it fails saying so."""
    topic = topic_name("eos_zombie")
    create_topics(topic, bootstrap=broker.bootstrap)
    _backlog(db_engine, topic, 3000, keys=7)
    document = _exactly_once(topic, batch_size=100, pipelining=where == "anywhere")
    flag = tmp_path / "batches"
    fault = (
        {"fault": "stop_before_commit", "at_batch": 3}
        if where == "in_transaction"
        else {"fault": "slow_batches"}
    )
    zombie = spawn(db_engine, broker.bootstrap, document, flag=str(flag), run_id="zombie", **fault)
    if where == "in_transaction":
        wait_for(lambda: _stopped(zombie.pid) or zombie.poll() is not None, "the relay to stop itself")
    else:
        wait_for(
            lambda: (flag.exists() and int(flag.read_text() or 0) >= 3) or zombie.poll() is not None,
            "3 batches",
        )
        os.kill(zombie.pid, signal.SIGSTOP)
    try:
        _drop_sessions(db_engine)
        time.sleep(TIMEOUTS["transaction_timeout_ms"] / 1000 + 1)  # the scenario: paused past its timeout
        stats = run_relay(_service(document), db_engine, run_id="takeover", bootstrap=broker.bootstrap)
    finally:
        os.kill(zombie.pid, signal.SIGCONT)
    _out, err = zombie.communicate(timeout=120)

    assert zombie.returncode != 0, err[-2000:]
    if where == "in_transaction":
        assert "RelayFencedError" in err and "fenced by a newer relay" in err, err[-3000:]
    else:
        assert "RelayFencedError" in err or "RelayDatabaseError" in err, err[-3000:]
    assert set(statuses(db_engine).values()) == {"SENT"}
    history = check_history(db_engine, [topic], broker.bootstrap, consume=True)
    error = next((line for line in reversed(err.splitlines()) if "Error" in line), "")
    record_figures(history.figures(), zombie_error=error[:300], takeover=stats.as_dict())
    history.assert_converged(max_duplicates=0)
    assert history.published_messages == history.distinct_published == 3000


def _service(document: dict[str, Any]) -> Any:
    return service(document["topic"], **{k: v for k, v in document.items() if k != "topic"})


def _stopped(pid: int) -> bool:
    """The process is stopped (state T in /proc)."""
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("T")


def _drop_sessions(engine: Engine) -> None:
    """Kill every session on the test database but this one, as the server does after a network split."""
    with engine.connect() as conn:
        sessions = conn.execute(
            text("SELECT id FROM information_schema.processlist WHERE db = :db AND id <> CONNECTION_ID()"),
            {"db": engine.url.database},
        ).all()
        for (session,) in sessions:
            conn.execute(text(f"KILL {int(session)}"))
