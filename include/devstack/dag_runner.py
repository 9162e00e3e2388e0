"""Serve `airflow dags test` requests one after another in one process, for the demo scripts.

Each `airflow dags test` process spends ~14 CPU-s, about half of it importing Airflow and a third
starting the in-process execution API; a second run in the same process reuses both (~3 CPU-s).
The demos run up to nine DAG runs each, and `make test` runs every demo, so this halves their cost.

Protocol (one line each way): the caller writes ``<log file> <airflow dags test arguments…>``; the
run's output goes to that log file and the runner answers ``ok`` or ``failed``. End of input ends it.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import IO


def _point_output_at(path: str, *, truncate: bool) -> None:
    """Send fds 1 and 2 (and so every logging handler writing to them) to ``path``."""
    sys.stdout.flush()
    sys.stderr.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if truncate else os.O_APPEND), 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)


def _serve(requests: IO[str], replies: IO[str], idle_log: str) -> None:
    from airflow.cli import cli_parser
    from airflow.configuration import write_default_airflow_configuration_if_needed

    write_default_airflow_configuration_if_needed()
    parser = cli_parser.get_parser()
    for line in requests:
        log_path, *arguments = line.split()
        _point_output_at(log_path, truncate=True)
        try:
            sys.argv = ["airflow", "dags", "test", *arguments]  # what DAG files see of the command
            args = parser.parse_args(sys.argv[1:])
            args.func(args)
            outcome = "ok"
        except SystemExit as stop:  # `dags test` exits with "DagRun failed"; argparse with usage
            print(f"dag runner: exit {stop.code}", file=sys.stderr)
            outcome = "ok" if stop.code in (None, 0) else "failed"
        except Exception:  # reported to the caller, who prints the log's tail
            traceback.print_exc()
            outcome = "failed"
        _point_output_at(idle_log, truncate=False)
        replies.write(outcome + "\n")
        replies.flush()


def main() -> None:
    replies = os.fdopen(os.dup(1), "w")
    idle_log = sys.argv[1] if len(sys.argv) > 1 else os.devnull
    _point_output_at(idle_log, truncate=False)
    _serve(sys.stdin, replies, idle_log)


if __name__ == "__main__":
    main()
