"""The event-driven triggers' shared watch loop, against a scripted probe: when it asks for a run."""

from __future__ import annotations

import asyncio
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
