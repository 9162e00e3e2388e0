"""CPU microseconds per message and peak RSS of the relay draining a large backlog, in a child process.

The child (``relay_child``) runs the project's relay once and reports ``getrusage(RUSAGE_SELF)``: CPU
around the run, and the process's peak RSS. The database's and the broker's CPU are not included. One run
(a 1M-row backlog takes a while to build); its rows/s is reported too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.benchmarks.common import Result, Sizes, db_url, fill, rate, scratch_db, temp_topics

ROOT = Path(__file__).resolve().parents[2]


def measure(sizes: Sizes) -> list[Result]:
    batch = sizes.ref_batch
    with scratch_db("resources") as engine, temp_topics("resources") as (topic,):
        fill(engine, topic, sizes.resource_rows)
        done = subprocess.run(
            [sys.executable, "-m", "tests.benchmarks.relay_child", db_url(engine), topic, str(batch)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise RuntimeError(f"relay child process failed ({done.returncode}):\n{done.stderr[-3000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if report["published"] != sizes.resource_rows:
        raise RuntimeError(f"relay child published {report['published']} of {sizes.resource_rows}")
    extra = {
        "backlog_rows": sizes.resource_rows,
        "rows_per_s": round(rate(report["published"], report["seconds"])),
        "cpu_seconds_startup": round(report["cpu_seconds_startup"], 2),
    }
    cpu_us = report["cpu_seconds_run"] / report["published"] * 1e6
    return [
        Result("relay_cpu_per_msg", batch, "us/msg", [cpu_us], extra),
        Result("relay_peak_rss", batch, "MB", [report["peak_rss_mb"]], extra),
    ]
