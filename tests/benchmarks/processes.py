"""CPU-seconds of processes on this machine, from ``/proc``: a peer's JVM, the database server, the broker.
CPU time is what a message costs wherever it is spent, so the benchmark adds up every process involved."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SERVERS = {"db": "mariadbd|mysqld", "broker": "kafka[.]Kafka|tansu"}  # pgrep -f patterns
_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User + system CPU-seconds of ``pid`` so far (every thread); 0.0 once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / _TICKS


def server_snapshot() -> dict[str, dict[int, float]]:
    """CPU-seconds so far of each local database-server and broker process, by pid."""
    found = {}
    for name, pattern in SERVERS.items():
        listed = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False).stdout
        found[name] = {int(pid): cpu_seconds(int(pid)) for pid in listed.split()}
    return found


def server_cpu_used(
    before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]
) -> dict[str, float | None]:
    """CPU-seconds each server used between two snapshots, over the processes alive at both (a broker other
    tests start or stop meanwhile is not counted; None: none was running)."""
    used: dict[str, float | None] = {}
    for name, then in before.items():
        now = after.get(name, {})
        kept = [pid for pid in then if pid in now]
        used[name] = sum(max(0.0, now[pid] - then[pid]) for pid in kept) if kept else None
    return used
