"""Child process for the resource figures: one relay run of an existing backlog, then its own usage as JSON.

``python -m tests.benchmarks.relay_child <db_url> <topic> <batch> [project|naive]``. CPU is measured
around the run only (imports and start-up are reported separately), every thread of the process together
(librdkafka's too); peak RSS is the whole process's high-water mark since it started (``VmHWM``). Not
``getrusage``'s ``ru_maxrss``: Linux keeps that across ``execve``, so a child would report at least the RSS
its parent had when it forked (a benchmark process that had run Airflow first reported 311 MB for a relay
that peaks below 100).
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from outbox_relay.store.connect import make_engine
from tests.benchmarks.common import bench_config, make_producer
from tests.benchmarks.naive import run_naive
from tests.benchmarks.project import run_project


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB since its ``execve`` (``/proc/self/status``)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("/proc/self/status has no VmHWM line: peak RSS cannot be measured here")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(db_url: str, topic: str, batch: int, relay: str = "project") -> None:
    config = bench_config(topic, batch)
    engine = make_engine(db_url)
    producer = make_producer(config)
    before, startup_kb = cpu_seconds(), peak_rss_kb()
    if relay == "naive":
        published, seconds = run_naive(engine, producer, batch)
    else:
        stats, seconds = run_project(config, engine, producer)
        published = stats.published
    after = cpu_seconds()
    engine.dispose()
    peak_kb = peak_rss_kb()
    report = {
        "published": published,
        "seconds": seconds,
        "cpu_seconds_run": after - before,
        "cpu_seconds_startup": before,
        "peak_rss_mb": peak_kb / 1024,
        "peak_rss_mb_startup": startup_kb / 1024,  # imports, engine and producer, before the run
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), *sys.argv[4:5])
