"""The relay run's time budget and its polling mode, with a fake clock and sleep and the passes over the
table replaced (no database): a wrong rule either overruns the Airflow task's slot or ends a low-latency
run long before its budget."""

from __future__ import annotations

from typing import Any

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay.models import RunStats
from outbox_relay.relay.engine import LINGER_POLL_SECONDS, OutboxRelay, RunRequest
from outbox_relay.relay.run_state import RunState

PASS_SECONDS = 1.0


class FakeTime:
    """clock() and sleep() over one fake timeline; sleeping advances it."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


class FakeLockConn:
    def __init__(self) -> None:
        self.commits = 0

    def commit(self) -> None:
        self.commits += 1


def _config(**extra: Any) -> ServiceConfig:
    return ServiceConfig.model_validate({"service": "orders", "topic": "orders.events", **extra})


class Harness:
    """An OutboxRelay whose store reads and passes are fakes; each pass takes PASS_SECONDS."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, config: ServiceConfig, stop_on_pass: int = 0) -> None:
        self.time = FakeTime()
        self.relay = OutboxRelay(
            config,
            engine=None,  # type: ignore[arg-type]  # the constructor does no I/O
            publisher=None,  # type: ignore[arg-type]
            clock=self.time.clock,
            sleep=self.time.sleep,
        )
        self.stop_on_pass = stop_on_pass
        self.passes: list[tuple[str, Any, Any, set[Any]]] = []
        self.waiting_reads = 0
        monkeypatch.setattr(self.relay.store, "waiting_keys", self._waiting_keys)
        monkeypatch.setattr(self.relay.store, "cursor_start", lambda conn: -1)
        monkeypatch.setattr(self.relay, "_pass_pipelined", self._pipelined)
        monkeypatch.setattr(self.relay, "_pass_serial", self._serial)

    def _waiting_keys(self, conn: Any) -> set[Any]:
        self.waiting_reads += 1
        return {f"waiting-{self.waiting_reads}"}

    def _pass(self, kind: str, conn: Any, run: RunState, cursor: Any, held_keys: set[Any]) -> None:
        self.passes.append((kind, conn, cursor, held_keys))
        self.time.now += PASS_SECONDS
        if len(self.passes) == self.stop_on_pass:
            run.stats.stopped_because = "time budget spent"

    def _pipelined(self, run: RunState, cursor: Any, held_keys: set[Any]) -> None:
        self._pass("pipelined", None, run, cursor, held_keys)

    def _serial(self, conn: Any, run: RunState, cursor: Any, held_keys: set[Any]) -> None:
        self._pass("serial", conn, run, cursor, held_keys)

    def drain(self, budget: float, poll: float | None = None) -> tuple[RunStats, FakeLockConn]:
        run = RunState(RunRequest("run-1", poll_interval_seconds=poll), RunStats(), self.time.now, budget)
        conn = FakeLockConn()
        self.relay._drain(conn, run)  # type: ignore[arg-type]
        return run.stats, conn


# --- the budget ---------------------------------------------------------------------------


def test_budget_left_counts_from_the_start_of_the_run() -> None:
    """What is left is the budget minus the time since the run started (negative once overrun)."""
    run = RunState(RunRequest("r"), RunStats(), started=100.0, budget=30.0)
    assert run.budget_left(100.0) == 30.0
    assert run.budget_left(110.0) == 20.0
    assert run.budget_left(140.0) == -10.0


def test_has_budget_until_it_is_spent(monkeypatch: pytest.MonkeyPatch) -> None:
    """Claiming goes on while any budget is left; at zero the run stops and says why."""
    harness = Harness(monkeypatch, _config())
    run = RunState(RunRequest("r"), RunStats(), started=100.0, budget=30.0)
    harness.time.now = 129.5
    assert harness.relay._has_budget(run) is True
    assert run.stats.stopped_because == "drained"
    harness.time.now = 130.0
    assert harness.relay._has_budget(run) is False
    assert run.stats.stopped_because == "time budget spent"


# --- the drain loop -----------------------------------------------------------------------


def test_without_polling_one_pass_then_return(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scheduled run ends once the table is drained, however much budget is left."""
    harness = Harness(monkeypatch, _config())
    stats, conn = harness.drain(budget=300)
    assert [p[0] for p in harness.passes] == ["pipelined"]
    _kind, _conn, cursor, held = harness.passes[0]
    assert cursor == -1
    assert held == {"waiting-1"}
    assert conn.commits == 1  # the reads before a pass must not keep a snapshot open
    assert stats.polls == 0
    assert stats.stopped_because == "drained"
    assert harness.time.slept == []


def test_polling_repeats_until_the_budget_left_is_no_longer_above_the_interval(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """poll_interval_seconds: sleep, pass again, until another sleep would reach past the budget."""
    harness = Harness(monkeypatch, _config(poll_interval_seconds=3))
    stats, conn = harness.drain(budget=10)
    # t=0 pass -> 1 (9 left) sleep -> 4 pass -> 5 (5 left) sleep -> 8 pass -> 9 (1 left <= 3): done
    assert len(harness.passes) == 3
    assert stats.polls == 2
    assert harness.time.slept == [3, 3]
    assert harness.time.now == 9.0
    assert conn.commits == 3
    assert [p[3] for p in harness.passes] == [{"waiting-1"}, {"waiting-2"}, {"waiting-3"}]
    assert stats.stopped_because == "drained"


def test_the_requests_poll_interval_wins_over_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run (CLI, DAG param) can ask for polling on a service configured without it."""
    harness = Harness(monkeypatch, _config())
    stats, _conn = harness.drain(budget=10, poll=2)
    assert stats.polls == 3
    assert harness.time.slept == [2, 2, 2]
    assert len(harness.passes) == 4


def test_remaining_budget_equal_to_the_interval_stops(monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is 'more than one interval left': exactly one interval left ends the run."""
    harness = Harness(monkeypatch, _config(poll_interval_seconds=3))
    stats, _conn = harness.drain(budget=4)  # after the pass: 3 s left
    assert len(harness.passes) == 1
    assert stats.polls == 0
    assert harness.time.slept == []


def test_a_pass_that_stopped_for_another_reason_ends_the_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a drained pass may poll again; a pass out of budget (or failing otherwise) ends the run."""
    harness = Harness(monkeypatch, _config(poll_interval_seconds=1), stop_on_pass=2)
    stats, _conn = harness.drain(budget=100)
    assert len(harness.passes) == 2
    assert stats.polls == 1
    assert harness.time.slept == [1]
    assert stats.stopped_because == "time budget spent"


def test_without_pipelining_the_pass_runs_on_the_lock_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """pipelining: false uses the serial pass, on the connection that holds the relay lock."""
    harness = Harness(monkeypatch, _config(pipelining=False))
    _stats, conn = harness.drain(budget=300)
    assert len(harness.passes) == 1
    kind, pass_conn, cursor, held = harness.passes[0]
    assert kind == "serial"
    assert pass_conn is conn
    assert (cursor, held) == (-1, {"waiting-1"})


@pytest.mark.parametrize(
    ("service", "request_poll", "fixed"),
    [
        ({}, None, (LINGER_POLL_SECONDS, False, 0.0)),  # no polling, no linger: one pass, no look again
        ({"poll_interval_seconds": 3}, None, (3, True, 0.0)),
        ({"poll_interval_seconds": 3, "linger_seconds": 5}, 2, (2, True, 5)),  # the request's interval wins
        ({"linger_seconds": 5}, None, (LINGER_POLL_SECONDS, False, 5)),
    ],
)
def test_the_drain_fixes_how_the_run_looks_again_once(
    monkeypatch: pytest.MonkeyPatch,
    service: dict[str, Any],
    request_poll: float | None,
    fixed: tuple[float, bool, float],
) -> None:
    """Interval, polling and linger do not change within a run: the drain sets them on the run once."""
    harness = Harness(monkeypatch, _config(**service))
    run = RunState(RunRequest("r", poll_interval_seconds=request_poll), RunStats(), 0.0, budget=0.5)
    harness.relay._drain(FakeLockConn(), run)  # type: ignore[arg-type]
    assert (run.interval, run.polling, run.linger) == fixed


def test_looks_again_takes_only_the_clock() -> None:
    """Polling: while more than one interval of budget is left. A linger: until no row was claimed for
    ``linger`` seconds (rows claimed restart it). Neither: never."""
    polling = RunState(RunRequest("r"), RunStats(), started=0.0, budget=10.0, interval=3.0, polling=True)
    assert polling.looks_again(6.0)  # 4 s left
    assert not polling.looks_again(7.0)  # 3 s left: the next look would not fit
    lingering = RunState(RunRequest("r"), RunStats(), started=0.0, budget=100.0, interval=0.1, linger=2.0)
    assert lingering.looks_again(1.0)  # the linger counts from here
    assert lingering.looks_again(2.9)
    assert not lingering.looks_again(3.0)
    lingering.stats.claimed += 1
    assert lingering.looks_again(3.5)  # rows came: the linger restarts
    assert not lingering.looks_again(5.5)
    neither = RunState(RunRequest("r"), RunStats(), started=0.0, budget=100.0, interval=0.1)
    assert not neither.looks_again(1.0)


# --- the linger ---------------------------------------------------------------------------


class Claiming(Harness):
    """Each pass claims the next number of rows from ``claims`` (0 once they are used up)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, config: ServiceConfig, claims: list[int]) -> None:
        super().__init__(monkeypatch, config)
        self.claims = claims

    def _pass(self, kind: str, conn: Any, run: RunState, cursor: Any, held_keys: set[Any]) -> None:
        super()._pass(kind, conn, run, cursor, held_keys)
        run.stats.claimed += self.claims.pop(0) if self.claims else 0


def test_a_lingering_run_ends_once_no_row_came_for_the_linger(monkeypatch: pytest.MonkeyPatch) -> None:
    """linger_seconds: looks every 0.1 s (no poll interval); rows found reset the linger."""
    harness = Claiming(monkeypatch, _config(linger_seconds=2.5), claims=[10, 0, 5])
    stats, _conn = harness.drain(budget=300)
    # t=1 pass (10 rows), 1.1 sleep -> 2.1 pass (0), 2.2 sleep -> 3.2 pass (5 rows: the linger restarts
    # at 3.2), then empty passes every 1.1 s until 3.2 + 2.5 has passed: at 4.3, 5.4 and 6.5.
    assert [round(s, 3) for s in harness.time.slept] == [0.1] * 5
    assert len(harness.passes) == 6
    assert round(harness.time.now, 3) == 6.5
    assert stats.polls == 5
    assert stats.stopped_because == "drained"


def test_a_linger_uses_the_poll_interval_and_stops_at_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    """With poll_interval_seconds it looks at that interval; the budget bounds a linger that rows renew."""
    harness = Claiming(monkeypatch, _config(linger_seconds=60, poll_interval_seconds=2), claims=[1] * 100)
    stats, _conn = harness.drain(budget=10)
    # pass -> 1, sleep 2 -> 3, pass -> 4, sleep -> 6, pass -> 7, sleep -> 9, pass -> 10 (0 left <= 2)
    assert harness.time.slept == [2, 2, 2]
    assert len(harness.passes) == 4
    assert stats.polls == 3


def test_without_a_linger_a_drained_run_ends_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    harness = Claiming(monkeypatch, _config(), claims=[10])
    stats, _conn = harness.drain(budget=300)
    assert len(harness.passes) == 1
    assert harness.time.slept == []
    assert stats.polls == 0
