"""``replay``: send FAILED rows again (back to NEW), republish SENT-unconfirmed rows or re-publish
dead letters; bounded by ``--max-rows`` and recorded in the row history."""

from __future__ import annotations

import argparse

from outbox_relay.requests import ReplayRequest
from outbox_relay_airflow.cli.arguments import (
    add_json,
    add_requested_by,
    request_from_args,
    service_arguments,
)
from outbox_relay_airflow.cli.command import Command, cli_history, print_report, service_of
from outbox_relay_airflow.cli.exits import OK


def _replay(args: argparse.Namespace) -> int:
    from outbox_relay_airflow import operations  # imports Airflow: after its logging goes to stderr

    request = request_from_args(ReplayRequest, args)
    config = service_of(args)
    report = operations.replay(config, request.job(config, cli_history(args, request.reason)))
    print_report(args, report)
    return OK


COMMANDS = [
    Command(
        "replay",
        "send FAILED rows again (back to NEW) or republish SENT-unconfirmed rows; bounded and recorded",
        service_arguments(ReplayRequest, add_requested_by, add_json),
        _replay,
        description="Every row replayed gets a row in the row history (outbox_relay_replay) with --by and "
        "--reason. Exit status 0: done (or dry run); 1: the database or broker failed; 2: bad arguments or "
        "more rows match than --max-rows. Times without an offset are in the service's db_time_zone.",
    )
]
