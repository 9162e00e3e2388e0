"""What a CLI command is: its arguments, its body, and how it says it was cancelled."""

from __future__ import annotations

import argparse
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from outbox_relay.config import ServiceConfig
from outbox_relay.models import HistoryEntry
from outbox_relay_airflow.services_folder import read_service


@dataclass(frozen=True)
class Command:
    """``run`` returns the exit status of an outcome; what it raises is mapped in ``exits``. ``airflow``:
    the command reads Airflow connections, so Airflow's logging is sent to stderr before it runs."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    cancelled: str = "cancelled"
    airflow: bool = True


def service_of(args: argparse.Namespace) -> ServiceConfig:
    """The command's service; an unknown or invalid one raises (exit status 2, naming the file)."""
    return read_service(args.service, args.services_dir)


def print_json(value: Any) -> None:
    print(json.dumps(value, default=str))


def print_report(args: argparse.Namespace, report: Any, **extra: Any) -> None:
    """A report as JSON (with ``extra`` fields) under ``--json``, else its lines."""
    if args.json:
        print_json({**report.as_dict(), **extra})
    else:
        print("\n".join(report.lines()))


def cli_history(args: argparse.Namespace, reason: str) -> HistoryEntry:
    """Who asks (``--by``) and why, for the row history; the run is this invocation."""
    return HistoryEntry(args.by, reason, f"cli__{args.command}__{uuid.uuid4().hex[:12]}")
