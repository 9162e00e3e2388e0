"""The event-driven triggers' shared watch loop, against a scripted probe: when it asks for a run."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from outbox_relay_airflow import triggers


class ScriptedProbe:
    def __init__(self, marks: list[Any]) -> None:
        self.marks, self.looks, self.closed = list(marks), 0, False

    def look(self) -> Any:
        self.looks += 1
        mark = self.marks.pop(0) if self.marks else None
        if isinstance(mark, Exception):
            raise mark
        return mark

    def close(self) -> None:
        self.closed = True


class ScriptedTrigger(triggers._WatchTrigger):
    announce = "work waits (%s)"
    watched = "work"

    def __init__(self, probe: ScriptedProbe) -> None:
        super().__init__("svc", watch_seconds=0)
        self.probe = probe

    def _open(self) -> ScriptedProbe:
        return self.probe


def _events(marks: list[Any]) -> tuple[list[int], ScriptedProbe]:
    """The look (1-based) after which each event came, over the scripted marks."""
    probe = ScriptedProbe(marks)

    async def collect() -> list[int]:
        seen = []
        agen = ScriptedTrigger(probe).run()
        try:
            while probe.looks < len(marks):
                await asyncio.wait_for(agen.__anext__(), timeout=5)
                seen.append(probe.looks)
        except TimeoutError:
            pass
        finally:
            await agen.aclose()
        return seen

    return asyncio.run(collect()), probe


def test_one_event_per_piece_of_work_and_again_when_the_mark_moves() -> None:
    # nothing, work (mark 5) seen three times, progress (7), drained, the same mark again as new work
    events, probe = _events([None, 5, 5, 5, 7, None, 7])
    assert events == [2, 5, 7]
    assert probe.closed


def test_the_same_work_waiting_past_the_grace_asks_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(triggers, "GRACE_SECONDS", 0.0)
    events, _ = _events([3, 3, 3])
    assert events == [1, 2, 3]


def test_a_failed_look_is_logged_and_the_watch_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    events, probe = _events([ConnectionError("database away"), 4])
    assert events == [2] and probe.closed
    assert (
        "service svc: could not look for work (ConnectionError: database away); trying again" in caplog.text
    )


class BlockingProbe:
    """A probe whose open or look blocks its thread until released, recording what happened in order."""

    def __init__(self, block_open: bool) -> None:
        self.release = threading.Event()
        self.inside = threading.Event()
        self.block_open = block_open
        self.calls: list[str] = []

    def opened(self) -> BlockingProbe:
        if self.block_open:
            self._block("open")
        self.calls.append("open")
        return self

    def look(self) -> Any:
        if not self.block_open:
            self._block("look")
        self.calls.append("look")
        return None

    def _block(self, what: str) -> None:
        self.calls.append(f"{what} starts")
        self.inside.set()
        assert self.release.wait(10), f"the test never released the {what}"

    def close(self) -> None:
        self.calls.append("close")


class BlockingTrigger(triggers._WatchTrigger):
    announce = "work waits (%s)"
    watched = "work"

    def __init__(self, probe: BlockingProbe) -> None:
        super().__init__("svc", watch_seconds=0)
        self.probe = probe

    def _open(self) -> BlockingProbe:
        return self.probe.opened()


@pytest.mark.parametrize("block_open", [False, True], ids=["look", "open"])
def test_a_trigger_cancelled_while_its_thread_works_closes_the_probe_only_after_it(block_open: bool) -> None:
    """The trigger runner cancels a trigger at any await; the thread of its open or look runs on, so its
    probe (and the clients it shares) must be let go only once that thread is done with them."""
    probe = BlockingProbe(block_open)

    async def cancel_while_blocked() -> None:
        task = asyncio.ensure_future(BlockingTrigger(probe).run().__anext__())
        await asyncio.to_thread(probe.inside.wait, 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert "close" not in probe.calls, probe.calls  # the cancelled run is over, its thread is not
        probe.release.set()
        await asyncio.to_thread(_wait_for, lambda: "close" in probe.calls)

    asyncio.run(cancel_while_blocked())
    what = "open" if block_open else "look"
    assert probe.calls[-3:] == [f"{what} starts", what, "close"], probe.calls


def _wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the probe was never closed"
        time.sleep(0.01)
