"""``schema``: the service files' JSON Schema, for editors."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from outbox_relay.config.schema import service_schema_text
from outbox_relay_airflow.cli.command import Command
from outbox_relay_airflow.cli.exits import OK


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", type=Path, help="write it to this file instead of stdout")


def _schema(args: argparse.Namespace) -> int:
    text = service_schema_text()
    if args.output is None:
        sys.stdout.write(text)
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {args.output}")
    return OK


COMMANDS = [
    Command(
        "schema", "print the service files' JSON Schema (for editors)", _arguments, _schema, airflow=False
    )
]
