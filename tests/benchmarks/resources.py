"""CPU microseconds per message and peak RSS of the relay draining a large backlog, in a child process;
and the naive relay's CPU per message on the same backlog, the same way (the machine-independent yardstick:
CPU-seconds per message vary with the machine and with what else runs on it).

The child (``relay_child``) runs one relay once and reports ``getrusage(RUSAGE_SELF)``'s CPU around the
run (every thread, librdkafka's too), and the process's own peak RSS (``VmHWM``). One run each (a 1M-row
backlog takes a while to build); its rows/s is reported too. Beside it, the CPU the local database server
and broker spent while the child ran (``/proc``; rows left out when they are not processes of this
machine): what a relayed message costs the database is the figure a capacity plan needs most.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from tests.benchmarks.common import Result, Sizes, db_url, fresh_backlog, rate, scratch_db, temp_topics
from tests.benchmarks.processes import SERVERS, server_cpu_used, server_snapshot

ROOT = Path(__file__).resolve().parents[2]


def _child(engine: Engine, topic: str, batch: int, relay: str, rows: int) -> dict[str, Any]:
    servers_before = server_snapshot()
    done = subprocess.run(
        [sys.executable, "-m", "tests.benchmarks.relay_child", db_url(engine), topic, str(batch), relay],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{relay} relay child process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if report["published"] != rows:
        raise RuntimeError(f"{relay} relay child published {report['published']} of {rows}")
    for name, used in server_cpu_used(servers_before, server_snapshot()).items():
        report[f"{name}_cpu_seconds"] = used
    return report


def _server_results(component: str, batch: int, report: dict[str, Any], rows: int) -> list[Result]:
    """``<component>_db_cpu_per_msg`` / ``_broker_cpu_per_msg`` for the servers found on this machine."""
    return [
        Result(
            f"{component}_{name}_cpu_per_msg", batch, "us/msg", [report[f"{name}_cpu_seconds"] / rows * 1e6]
        )
        for name in SERVERS
        if report.get(f"{name}_cpu_seconds") is not None
    ]


def measure(sizes: Sizes) -> list[Result]:
    batch, rows = sizes.ref_batch, sizes.resource_rows
    with scratch_db("resources") as engine, temp_topics("resources") as (topic,):
        fresh_backlog(engine, topic, rows)
        naive = _child(engine, topic, batch, "naive", rows)
        fresh_backlog(engine, topic, rows)
        report = _child(engine, topic, batch, "project", rows)
    extra = {
        "backlog_rows": rows,
        "rows_per_s": round(rate(report["published"], report["seconds"])),
        "cpu_seconds_startup": round(report["cpu_seconds_startup"], 2),
        "peak_rss_mb_startup": round(report["peak_rss_mb_startup"]),
    }
    naive_extra = {
        "backlog_rows": rows,
        "rows_per_s": round(rate(naive["published"], naive["seconds"])),
        "peak_rss_mb_startup": round(naive["peak_rss_mb_startup"]),
    }
    return [
        Result("relay_cpu_per_msg", batch, "us/msg", [report["cpu_seconds_run"] / rows * 1e6], extra),
        Result("naive_cpu_per_msg", batch, "us/msg", [naive["cpu_seconds_run"] / rows * 1e6], naive_extra),
        Result("relay_peak_rss", batch, "MB", [report["peak_rss_mb"]], extra),
        Result("naive_peak_rss", batch, "MB", [naive["peak_rss_mb"]], naive_extra),
        *_server_results("relay", batch, report, rows),
        *_server_results("naive", batch, naive, rows),
    ]
