"""Command line: ``outbox-relay init|ddl|validate|plan|relay|confirm|cleanup|reconcile|explain|audit|replay|
backfill|schema`` (also ``python -m outbox_relay_airflow.cli ...``), a module per command.

Connections are found where ``airflow connections get`` finds them (``AIRFLOW_CONN_*`` variables, the
secrets backend, the metadata database of ``AIRFLOW_HOME``), so the CLI checks exactly what the DAGs use.
Exit statuses: ``exits``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from outbox_relay.config.loader import SERVICES_DIR_ENV
from outbox_relay_airflow.cli import (
    audit,
    backfill,
    explain,
    reconcile,
    replay,
    run_now,
    schema,
    setup,
    validate,
)
from outbox_relay_airflow.cli.command import Command
from outbox_relay_airflow.cli.exits import CAUGHT, exit_status
from outbox_relay_airflow.connections import look_up_like_airflow_cli

COMMANDS: dict[str, Command] = {
    c.name: c
    for module in (validate, run_now, reconcile, explain, audit, replay, backfill, setup, schema)
    for c in module.COMMANDS
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="outbox-relay", description=__doc__)
    root.add_argument("--services-dir", type=Path, default=None, help="folder of service YAML files")
    sub = root.add_subparsers(dest="command", required=True)
    for command in COMMANDS.values():
        command.add_arguments(
            sub.add_parser(command.name, help=command.help, description=command.description)
        )
    return root


class _CurrentStderr:
    """``sys.stderr`` as it is when a line is written, not when logging was configured: a caller that swaps
    it (pytest's capture, a redirect) must not leave the logger writing to a closed stream."""

    def __getattr__(self, name: str) -> object:
        return getattr(sys.stderr, name)

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _airflow_logs_to_stderr(args: argparse.Namespace) -> None:
    """Import Airflow with its log lines going to stderr: it writes them to the stdout of the moment it
    configures logging, and a warning there would corrupt a command's output (``--json`` piped to jq).
    Skipped where no Airflow is needed (importing it takes over a second)."""
    offline = args.command in {"validate", "plan"} and args.offline
    if not COMMANDS[args.command].airflow or (
        offline and (args.services_dir or os.environ.get(SERVICES_DIR_ENV))
    ):
        return
    with contextlib.redirect_stdout(sys.stderr):
        import airflow.configuration  # noqa: F401 - configures Airflow's logging on import
        from airflow.sdk.log import configure_logging

        # Hooks log through the Task SDK's structlog, which otherwise writes to stdout on first use.
        configure_logging(output=_CurrentStderr())


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    command = COMMANDS[args.command]
    _airflow_logs_to_stderr(args)
    look_up_like_airflow_cli()
    try:
        return command.run(args)
    except CAUGHT as exc:
        return exit_status(exc, command.cancelled)
