"""``validate`` and ``plan``: every service file checked, then (unless ``--offline``) the live database
(table, columns, index) and broker (topics); ``plan`` adds each healthy service's backlog."""

from __future__ import annotations

import argparse
import json
from typing import Any

from outbox_relay.checks import CheckReport
from outbox_relay.config import ServiceConfig
from outbox_relay.config.loader import config_files
from outbox_relay_airflow.cli.command import Command
from outbox_relay_airflow.cli.exits import FOUND, OK
from outbox_relay_airflow.services_folder import read_services, services_folder


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--offline", action="store_true", help="only check the files, no DB or broker")
    parser.add_argument("services", nargs="*", help="limit to these services")


def _live(config: ServiceConfig, plan: bool) -> tuple[CheckReport, dict[str, Any] | None]:
    """The live checks, and with ``plan`` the backlog of a service that passed them."""
    from outbox_relay_airflow import operations  # imports Airflow: only for live checks, after its logging

    report = operations.live_report(config)
    return report, operations.backlog(config) if plan and report.ok else None


def _check(args: argparse.Namespace, plan: bool) -> int:
    directory = services_folder(args.services_dir)[0]
    loaded = read_services(args.services_dir)  # a missing folder's error names where its name came from
    failed = False
    for error in loaded.errors:
        print(f"INVALID {error}")
        failed = True
    for name in sorted(set(args.services) - set(loaded.services) - {e.path.stem for e in loaded.errors}):
        print(f"UNKNOWN {name}: no {name}.yaml in {directory}")
        failed = True
    if not loaded.services and not loaded.errors:
        print(f"no service configs found in {directory}")
        return FOUND
    paths = {p.stem: p for p in config_files(directory)}
    for config in (c for name, c in loaded.services.items() if not args.services or name in args.services):
        report, backlog = (CheckReport(config.service), None) if args.offline else _live(config, plan)
        print(f"{'OK     ' if report.ok else 'PROBLEM'} {config.service} ({paths[config.service]})")
        for label, lines in (("problem", report.problems), ("fix", report.fixes), ("note", report.notes)):
            for line in lines:
                print(f"    {label + ':':<9}{line}")
        if backlog is not None:
            print(f"    backlog: {json.dumps(backlog, default=str)}")
        failed = failed or not report.ok
    return FOUND if failed else OK


COMMANDS = [
    Command(
        "validate",
        "check every config, then the live DB (table, columns, index) and broker (topics)",
        _arguments,
        lambda args: _check(args, plan=False),
    ),
    Command(
        "plan",
        "validate, then show each service's backlog and the DDL to fix problems",
        _arguments,
        lambda args: _check(args, plan=True),
    ),
]
