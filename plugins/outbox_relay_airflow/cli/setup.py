"""The set-up commands: ``init DIR`` (a starting point in a DAG folder) and ``ddl`` (the tables, printed
or created on an Airflow connection)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from outbox_relay.database import STANDARD_TABLE, TableDDL, create_missing, has_standard_shape, tables
from outbox_relay.errors import ConfigurationError
from outbox_relay_airflow.cli.command import Command
from outbox_relay_airflow.services_folder import read_service, services_folder

DEFAULT_DB_CONNECTION = "outbox_db"


def _init_arguments(init: argparse.ArgumentParser) -> None:
    init.add_argument("folder", type=Path, help="the DAG folder (usually Airflow's [core] dags_folder)")
    init.add_argument("--force", action="store_true", help="overwrite files that exist")


def _ddl_arguments(ddl: argparse.ArgumentParser) -> None:
    which = ddl.add_mutually_exclusive_group()
    which.add_argument(
        "--table", help="name of the outbox table: name or schema.name (default outbox_message)"
    )
    which.add_argument("--service", help="a registered service: its table, and its database for --apply")
    ddl.add_argument(
        "--shared-only", action="store_true", help="only the shared tables, not the outbox table"
    )
    ddl.add_argument(
        "--inbox", action="store_true", help="also the consumers' inbox table and inbox_duplicate"
    )
    ddl.add_argument("--apply", action="store_true", help="create what is missing (existing tables are left)")
    ddl.add_argument("--conn", help="Airflow connection for --apply (default: the service's, else outbox_db)")


def run_init(args: argparse.Namespace) -> int:
    from outbox_relay_airflow.scaffold import write_scaffold

    folder: Path = args.folder.resolve()
    written = write_scaffold(folder, args.force)  # a file that exists: a ConfigurationError (exit status 2)
    print(f"wrote {len(written)} files into {folder}:")
    for path in written:
        print(f"  {path.relative_to(folder)}")
    services = folder / "services"
    print("next:")
    print("  1. connections outbox_db (type outbox) and kafka_default (type kafka), e.g.")
    print("       airflow connections add outbox_db --conn-uri 'outbox://USER:PASSWORD@HOST:3306/DATABASE'")
    print("  2. the example's tables:  outbox-relay ddl --service orders --apply")
    print("  3. check it:              outbox-relay validate orders")
    default = services_folder()[0]
    if default.resolve() != services:
        print(
            f"note: the CLI and the Outbox page read {default}; set OUTBOX_RELAY_SERVICES_DIR={services} for "
            "them (the DAG files read this one)"
        )
    return 0


def _wanted(args: argparse.Namespace) -> tuple[list[TableDDL], str]:
    """The tables asked for, and the connection to apply them on."""
    table, conn_id = args.table or STANDARD_TABLE, args.conn or DEFAULT_DB_CONNECTION
    if args.service:
        config = read_service(args.service, args.services_dir)
        if not has_standard_shape(config) and not args.shared_only:
            raise ConfigurationError(
                f"service {config.service} maps its own columns (table {config.table}): the table is yours to "
                "create; --shared-only gives the relay's shared tables, `outbox-relay plan` what is missing"
            )
        table, conn_id = str(config.table), args.conn or config.connections.db
    wanted = tables(table, inbox=args.inbox)
    return (wanted[1:] if args.shared_only else wanted), conn_id


def run_ddl(args: argparse.Namespace) -> int:
    wanted, conn_id = _wanted(args)
    if not args.apply:
        print("\n".join(t.sql for t in wanted), end="")
        return 0
    from outbox_relay_airflow.hooks import OutboxDatabaseHook

    try:
        engine = OutboxDatabaseHook(conn_id).get_engine(pool_size=1)
        try:
            with engine.begin() as conn:
                done = create_missing(conn, wanted)
        finally:
            engine.dispose()
    except Exception as exc:  # the connection is missing or the server refused: say which and why
        print(f"error: database connection {conn_id!r}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    for table, created in done:
        print(f"{'created' if created else 'exists '} {table.table}  ({table.what})")
    return 0


COMMANDS = [
    Command(
        "init",
        "write a starting point into a DAG folder: the DAG files, a services folder with one commented "
        "example, its table's DDL",
        _init_arguments,
        run_init,
        description="Writes outbox_services.py (the DAGs of every file in services/), "
        "outbox_service_config_errors.py (invalid files as import errors), services/orders.yaml (a commented "
        "example), services/service.schema.json and services/orders.sql. Exit status 0: written; 2: a file "
        "exists (nothing written).",
    ),
    Command(
        "ddl",
        "print the project's tables (or create the missing ones on an Airflow connection)",
        _ddl_arguments,
        run_ddl,
        description="The standard outbox table (default name outbox_message), the relay's shared retry-state "
        "and row-history tables and, with --inbox, the consumers' inbox table (and its count of skipped "
        "redeliveries). Exit status 0: printed or applied; 1: the database failed; 2: bad arguments.",
    ),
]
