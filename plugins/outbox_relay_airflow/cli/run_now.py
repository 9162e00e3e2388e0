"""``relay``, ``confirm`` and ``cleanup``: one run of a service's job now, outside the scheduler, with the
same connections as its DAGs. Each prints the run's statistics as JSON."""

from __future__ import annotations

import argparse
import uuid

from outbox_relay.relay.run_request import RunKind, RunRequest
from outbox_relay.requests import CleanupRequest, ConfirmRequest, RelayRequest
from outbox_relay_airflow.cli.arguments import request_from_args, service_arguments
from outbox_relay_airflow.cli.command import Command, print_json, service_of
from outbox_relay_airflow.cli.exits import OK


def _run_id(command: str) -> str:
    return f"cli__{command}__{uuid.uuid4().hex[:12]}"


def _relay(args: argparse.Namespace) -> int:
    from outbox_relay_airflow import operations  # imports Airflow: after its logging goes to stderr

    config = service_of(args)
    request = request_from_args(RelayRequest, args).check(config, "cli")
    shard = request.shard if config.shards > 1 else None
    engine_request = RunRequest(
        kind=RunKind.RELAY,
        run_id=_run_id("relay"),
        time_budget_seconds=request.time_budget_seconds,
        shard=shard,
    )
    print_json(operations.relay(config, engine_request))
    return OK


def _confirm(args: argparse.Namespace) -> int:
    from outbox_relay_airflow import operations  # imports Airflow: after its logging goes to stderr

    config = service_of(args)
    print_json(operations.confirm(config, request_from_args(ConfirmRequest, args).time_budget_seconds))
    return OK


def _cleanup(args: argparse.Namespace) -> int:
    from outbox_relay_airflow import operations  # imports Airflow: after its logging goes to stderr

    config = service_of(args)
    print_json(operations.cleanup(config, request_from_args(CleanupRequest, args).time_budget_seconds))
    return OK


COMMANDS = [
    Command(
        "relay",
        "run one relay pass for a service now (outside the scheduler)",
        service_arguments(RelayRequest),
        _relay,
    ),
    Command(
        "confirm", "ingest a service's confirmation topic now", service_arguments(ConfirmRequest), _confirm
    ),
    Command("cleanup", "run retention for a service now", service_arguments(CleanupRequest), _cleanup),
]
