"""``backfill``: relay (and with ``--republish`` send again) the rows created in a time window, in one run
however long the window, taking turns with the scheduled relay."""

from __future__ import annotations

import argparse
import sys

from outbox_relay.backfill import BackfillReport
from outbox_relay.requests import BackfillRequest
from outbox_relay_airflow.cli.arguments import (
    add_json,
    add_requested_by,
    request_from_args,
    service_arguments,
)
from outbox_relay_airflow.cli.command import Command, cli_history, print_report, service_of
from outbox_relay_airflow.cli.exits import OK


def _progress(report: BackfillReport) -> None:
    print(
        f"chunk {report.chunks}: {report.published} published, {report.republished} republished, "
        f"{report.held_back} held back ({report.elapsed_seconds:g}s)",
        file=sys.stderr,
    )


def _backfill(args: argparse.Namespace) -> int:
    from outbox_relay_airflow import operations  # imports Airflow: after its logging goes to stderr

    request = request_from_args(BackfillRequest, args)
    config = service_of(args)
    report = operations.backfill(config, request.job(config, cli_history(args, request.reason)), _progress)
    print_report(args, report)
    return OK


COMMANDS = [
    Command(
        "backfill",
        "relay (and with --republish send again) the rows created in a time window, in one run",
        service_arguments(BackfillRequest, add_requested_by, add_json),
        _backfill,
        description="One run however long the window: chunks that take turns with the scheduled relay; a "
        "window's row whose key has an older unpublished row is held back. Ctrl-C cancels: sent rows stay "
        "SENT, the rest stay NEW for the scheduled relay. Exit status 0: done; 1: database or broker "
        "failed, or another backfill of the table runs; 2: bad arguments; 130: cancelled. Times without an "
        "offset are in the service's db_time_zone.",
        cancelled="cancelled: rows already marked SENT stay SENT; the rest stay NEW and the scheduled relay "
        "sends them (a batch acknowledged but not yet marked may be sent once more)",
    )
]
