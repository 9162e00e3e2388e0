"""``explain``: where one row stands and why (waiting for a retry, held behind a row of its key, sent, ...)."""

from __future__ import annotations

import argparse
import sys

from outbox_relay.explain import not_found
from outbox_relay.requests import ExplainRequest
from outbox_relay_airflow.cli.arguments import add_json, request_from_args, service_arguments
from outbox_relay_airflow.cli.command import Command, print_report, service_of
from outbox_relay_airflow.cli.exits import FOUND, OK


def _explain(args: argparse.Namespace) -> int:
    from outbox_relay_airflow import operations  # imports Airflow: after its logging goes to stderr

    request = request_from_args(ExplainRequest, args)
    config = service_of(args)
    explanation = operations.explain(config, request.row)
    if explanation is None:
        print(not_found(config, request.row), file=sys.stderr)
        return FOUND
    print_report(args, explanation)
    return OK


COMMANDS = [
    Command(
        "explain",
        "where one row stands and why (waiting for a retry, held behind a row of its key, sent, ...)",
        service_arguments(ExplainRequest, add_json),
        _explain,
        description="Exit status 0: explained; 1: the table does not hold the row; 2: bad arguments or "
        "configuration.",
    )
]
