"""The stress driver of ``test_watch_churn.py``: many watching triggers started and cancelled in one event
loop, over and over, as Airflow's trigger runner does when triggerers start and stop or DAGs come and go.

Run in a process of its own (a crash kills it, not the test), with ``faulthandler`` on and the garbage
collector running often, so that it also runs on librdkafka's threads (which call into Python to deliver
admin results). Prints one JSON line: what was opened, let go and looked at."""

from __future__ import annotations

import asyncio
import faulthandler
import gc
import json
import random
import sys
import threading
import weakref
from collections import Counter
from typing import Any

import greenback

from outbox_relay_airflow import triggers


def _count(counts: Counter[str], name: str, call: Any) -> Any:
    def counted(*args: Any) -> Any:
        counts[name] += 1
        return call(*args)

    return counted


def _instrument(counts: Counter[str]) -> None:
    """Count opened clients, looks, and admin clients freed (and by which kind of thread)."""

    def open_admin(key: Any) -> Any:
        client = opener(key)
        counts["admin opened"] += 1
        weakref.finalize(client, lambda: counts.update([f"admin freed on {threading.current_thread().name}"]))
        return client

    opener = triggers.ADMIN_CLIENTS._open
    triggers.ADMIN_CLIENTS._open = open_admin
    triggers.ENGINES._open = _count(counts, "engine opened", triggers.ENGINES._open)
    for probe in (triggers._RowsProbe, triggers._LagProbe):
        probe.look = _count(counts, "looks", probe.look)  # type: ignore[method-assign]


async def _drive(trigger: triggers._WatchTrigger, counts: Counter[str]) -> None:
    """As the trigger runner runs a trigger: in a greenback portal (whose greenlets leave a cancelled
    trigger's frames, and the probe in them, to the cyclic garbage collector)."""
    await greenback.ensure_portal()
    async for _ in trigger.run():
        counts["events"] += 1


async def _churn(services: list[str], folder: str, cycles: int, counts: Counter[str]) -> None:
    kinds = (triggers.OutboxRowsTrigger, triggers.ConfirmationsWaitingTrigger)
    for _ in range(cycles):
        running = [
            asyncio.ensure_future(_drive(kind(name, 0.02, folder), counts))
            for name in services
            for kind in kinds
        ]
        await asyncio.sleep(random.uniform(0, 0.25))  # some still opening, some looking, some asleep
        random.shuffle(running)
        for task in running:  # stopped one by one, now and then with a pause between
            task.cancel()
            if random.random() < 0.3:
                await asyncio.sleep(random.uniform(0, 0.03))
        for outcome in await asyncio.gather(*running, return_exceptions=True):
            if not isinstance(outcome, asyncio.CancelledError):
                counts[f"ended with {outcome!r}"] += 1
        counts["cycles"] += 1


def main(folder: str, services: int, cycles: int, seed: int) -> None:
    faulthandler.enable()
    gc.set_threshold(20)  # collections every few allocations, on whichever thread allocates
    random.seed(seed)
    counts: Counter[str] = Counter()
    _instrument(counts)
    asyncio.run(_churn([f"s{n}" for n in range(services)], folder, cycles, counts))
    gc.collect()
    engines = sum(users for _, users in triggers.ENGINES._held.values())
    admins = sum(users for _, users in triggers.ADMIN_CLIENTS._held.values())
    print(json.dumps({**counts, "engine users left": engines, "admin users left": admins}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
