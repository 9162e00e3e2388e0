"""``reconcile``: compare a service's outbox table with its consumers' table for a time window."""

from __future__ import annotations

import argparse
import json

from outbox_relay.requests import ReconcileRequest
from outbox_relay_airflow.cli.arguments import add_json, request_from_args, service_arguments
from outbox_relay_airflow.cli.command import Command, print_json, service_of
from outbox_relay_airflow.cli.exits import FOUND, OK


def _reconcile(args: argparse.Namespace) -> int:
    from outbox_relay_airflow import operations  # imports Airflow: after its logging goes to stderr

    request = request_from_args(ReconcileRequest, args)
    report = operations.reconcile(service_of(args), request)
    if args.json:
        print_json({**report.as_dict(), "missing": report.missing})
    else:
        print(report.summary())
        for category, items in report.listed.items():
            for item in items:
                print(f"  {category}: {json.dumps(item, default=str)}")
    return FOUND if report.missing and not request.redeliver else OK


COMMANDS = [
    Command(
        "reconcile",
        "compare a service's outbox table with its consumers' table for a time window",
        service_arguments(ReconcileRequest, add_json),
        _reconcile,
        description="Report ids sent but never consumed, consumed but never marked sent, and failures; "
        "--redeliver repairs the first two. Exit status 0: nothing missing (or repaired); 1: messages "
        "missing; 2: bad arguments or configuration. Times without an offset are in the service's "
        "db_time_zone.",
    )
]
