"""Command line: ``outbox-relay init|ddl|validate|plan|relay|confirm|cleanup|reconcile|explain|audit|replay|
backfill|schema`` (also ``python -m outbox_relay_airflow.cli ...``).

Connections are found where ``airflow connections get`` finds them (``AIRFLOW_CONN_*`` variables, the
secrets backend, the metadata database of ``AIRFLOW_HOME``), so the CLI checks exactly what the DAGs use.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import json
import os
import sys
import uuid
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from outbox_relay.checks import CheckReport, check_broker, check_database
from outbox_relay.config import ServiceConfig
from outbox_relay.config.loader import SERVICES_DIR_ENV, ConfigError, config_files
from outbox_relay.config.schema import service_schema_text
from outbox_relay.errors import ConfigurationError, InfrastructureError
from outbox_relay.explain import Explainer, not_found, parse_reference
from outbox_relay.reconciliation import parse_time
from outbox_relay.replay import ReplayAudit
from outbox_relay.store.outbox import OutboxStore
from outbox_relay_airflow import setup_commands
from outbox_relay_airflow.connections import look_up_like_airflow_cli
from outbox_relay_airflow.services_folder import read_service, read_services, services_folder

AUDIT_LISTED = 100  # message ids per class in the text report


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="outbox-relay", description=__doc__)
    parser.add_argument("--services-dir", type=Path, default=None, help="folder of service YAML files")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in [
        ("validate", "check every config, then the live DB (table, columns, index) and broker (topics)"),
        ("plan", "validate, then show each service's backlog and the DDL to fix problems"),
        ("relay", "run one relay pass for a service now (outside the scheduler)"),
        ("confirm", "ingest a service's confirmation topic now"),
        ("cleanup", "run retention for a service now"),
    ]:
        cmd = sub.add_parser(name, help=help_text)
        if name in {"validate", "plan"}:
            cmd.add_argument("--offline", action="store_true", help="only check the files, no DB or broker")
            cmd.add_argument("services", nargs="*", help="limit to these services")
        else:
            cmd.add_argument("service")
        if name == "relay":
            cmd.add_argument(
                "--shard",
                type=int,
                default=None,
                help="a sharded service: relay only this shard (default: all)",
            )
    _reconcile_parser(sub)
    explain = sub.add_parser(
        "explain",
        help="where one row stands and why (waiting for a retry, held behind a row of its key, sent, ...)",
    )
    explain.add_argument("service")
    explain.add_argument("row", type=_reference, help="the row's message id or primary key")
    explain.add_argument("--json", action="store_true", help="print the explanation as JSON")
    audit = sub.add_parser(
        "audit",
        help="did we lose anything? read the topic back and compare it with the table for a time window",
        description="Reports every class of row the window holds: sent_not_on_topic (lost), order_violations, "
        "on_topic_not_marked, not_sent, failed, unconfirmed, confirmed, duplicates; the text lists 100 ids of "
        "each, --json all. Exit status 0: nothing lost and per-key order kept; 1: rows marked sent are missing "
        "from the topic, or a key's messages are out of order; 2: bad arguments or configuration. Times "
        "without an offset are in the service's db_time_zone.",
    )
    audit.add_argument("service")
    audit.add_argument("--since", type=_iso, required=True, help="rows created at or after this time")
    audit.add_argument("--until", type=_iso, help="rows created before this time (default: now)")
    audit.add_argument("--json", action="store_true", help="print the report as JSON")
    _replay_parser(sub)
    _backfill_parser(sub)
    setup_commands.add_parsers(sub)
    schema = sub.add_parser("schema", help="print the service files' JSON Schema (for editors)")
    schema.add_argument("--output", "-o", type=Path, help="write it to this file instead of stdout")
    return parser


def _replay_parser(sub: Any) -> None:
    cmd = sub.add_parser(
        "replay",
        help="send FAILED rows again (back to NEW) or republish SENT-unconfirmed rows; bounded and recorded",
        description="Every row replayed gets a row in the replay history (outbox_relay_replay) with --by and "
        "--reason. Exit status 0: done (or dry run); 2: bad arguments or more rows match than --max-rows. "
        "Times without an offset are in the service's db_time_zone.",
    )
    cmd.add_argument("service")
    cmd.add_argument("--failed", action="store_true", help="FAILED rows (the default when neither is given)")
    cmd.add_argument("--unconfirmed", action="store_true", help="SENT rows not (yet) confirmed")
    cmd.add_argument(
        "--dead-letter",
        action="store_true",
        help="copies on the dead-letter topic, to their original topic (the window: when dead-lettered)",
    )
    cmd.add_argument(
        "--row-id", action="append", default=[], dest="row_ids", help="a primary key (repeatable)"
    )
    cmd.add_argument("--message-id", action="append", default=[], dest="message_ids", help="(repeatable)")
    cmd.add_argument("--key", help="only rows of this message key")
    cmd.add_argument("--event-type", help="only rows of this event type")
    cmd.add_argument("--since", help="only rows created at or after this ISO time")
    cmd.add_argument("--until", help="only rows created before this ISO time")
    cmd.add_argument("--max-rows", type=int, default=1000, help="refuse when more rows match (default 1000)")
    cmd.add_argument("--dry-run", action="store_true", help="only list what would be replayed")
    cmd.add_argument("--reason", required=True, help="why (kept in the replay history)")
    cmd.add_argument("--by", default=getpass.getuser(), help="who asks (default: this OS user)")
    cmd.add_argument("--json", action="store_true", help="print the report as JSON")


def _replay(args: argparse.Namespace) -> int:
    chosen = (("failed", args.failed), ("unconfirmed", args.unconfirmed), ("dead_letter", args.dead_letter))
    kinds = [k for k, on in chosen if on] or ["failed"]
    params = {
        "statuses": kinds, "row_ids": args.row_ids, "message_ids": args.message_ids, "key": args.key,
        "event_type": args.event_type, "created_from": args.since, "created_until": args.until,
        "max_rows": args.max_rows, "dry_run": args.dry_run,
    }  # fmt: skip
    try:
        config = read_service(args.service, args.services_dir)
        from outbox_relay_airflow import replay_tasks  # Airflow is imported once the arguments are good

        audit = ReplayAudit(args.by, args.reason, f"cli__replay__{uuid.uuid4().hex[:12]}")
        report = replay_tasks.replay(config, replay_tasks.request_from_params(params, audit, config))
    except (LookupError, ConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InfrastructureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.as_dict(), default=str) if args.json else "\n".join(report.lines()))
    return 0


def _backfill_parser(sub: Any) -> None:
    cmd = sub.add_parser(
        "backfill",
        help="relay (and with --republish send again) the rows created in a time window, in one run",
        description="One run however long the window: chunks that take turns with the scheduled relay; a "
        "window's row whose key has an older unpublished row is held back. Ctrl-C cancels: sent rows stay "
        "SENT, the rest stay NEW for the scheduled relay. Exit status 0: done; 1: database or broker "
        "failed, or another backfill of the table runs; 2: bad arguments; 130: cancelled. Times without an "
        "offset are in the service's db_time_zone.",
    )
    cmd.add_argument("service")
    cmd.add_argument("--since", required=True, help="rows created at or after this ISO time")
    cmd.add_argument("--until", required=True, help="rows created before this ISO time")
    cmd.add_argument("--reason", required=True, help="why (kept in the replay history)")
    cmd.add_argument("--republish", action="store_true", help="also send the window's SENT rows again")
    cmd.add_argument("--max-rows-per-second", type=float, help="pace the backfill (about a batch at a time)")
    cmd.add_argument("--chunk-seconds", type=float, default=20.0,
                     help="let a waiting scheduled relay in after each chunk this long (default 20)")  # fmt: skip
    cmd.add_argument("--dry-run", action="store_true", help="only count the window's rows by status")
    cmd.add_argument("--by", default=getpass.getuser(), help="who asks (default: this OS user)")
    cmd.add_argument("--json", action="store_true", help="print the report as JSON")


def _backfill(args: argparse.Namespace) -> int:
    params = {
        "since": args.since, "until": args.until, "republish": args.republish, "dry_run": args.dry_run,
        "max_rows_per_second": args.max_rows_per_second, "chunk_seconds": args.chunk_seconds,
    }  # fmt: skip
    config = _service_or_none(args)
    if config is None:
        return 2
    from outbox_relay_airflow import backfill_tasks  # Airflow is imported once the arguments are good

    def progress(report: Any) -> None:
        print(f"chunk {report.chunks}: {report.published} published, {report.republished} republished, "
              f"{report.held_back} held back ({report.elapsed_seconds:g}s)", file=sys.stderr)  # fmt: skip

    audit = ReplayAudit(args.by, args.reason, f"cli__backfill__{uuid.uuid4().hex[:12]}")
    try:
        request = backfill_tasks.request_from_params(params, audit, config)
        report = backfill_tasks.backfill(config, request, progress)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except InfrastructureError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("cancelled: rows already marked SENT stay SENT; the rest stay NEW and the scheduled relay sends "
              "them (a batch acknowledged but not yet marked may be sent once more)", file=sys.stderr)  # fmt: skip
        return 130
    print(json.dumps(report.as_dict(), default=str) if args.json else "\n".join(report.lines()))
    return 0


def _service_or_none(args: argparse.Namespace) -> ServiceConfig | None:
    """The command's service config; on a bad or unknown one, say why on stderr (exit status 2)."""
    try:
        return read_service(args.service, args.services_dir)
    except (LookupError, ConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return None


def _iso(value: str) -> datetime:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _reconcile_parser(sub: Any) -> None:
    cmd = sub.add_parser(
        "reconcile",
        help="compare a service's outbox table with its consumers' table for a time window",
        description="Report ids sent but never consumed, consumed but never marked sent, and failures; "
        "--redeliver repairs the first two. Times without an offset are in the service's db_time_zone.",
    )
    cmd.add_argument("service")
    cmd.add_argument("--since", type=_iso, help="window start (default: until - reconciliation.window_hours)")
    cmd.add_argument("--until", type=_iso, help="window end, exclusive (default: now)")
    cmd.add_argument(
        "--redeliver",
        action="store_true",
        help="reset missing rows to new (relayed again), mark consumed sent",
    )
    cmd.add_argument(
        "--include-failed",
        action="store_true",
        help="with --redeliver: also resend rows the relay gave up on",
    )
    cmd.add_argument("--json", action="store_true", help="print the report as JSON")


def _reconcile(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.since and args.until and args.since >= args.until:
        parser.error(f"--since {args.since} must be before --until {args.until}")
    if args.include_failed and not args.redeliver:
        parser.error("--include-failed only makes sense with --redeliver")
    try:
        config = read_service(args.service, args.services_dir)
        from outbox_relay_airflow import tasks  # Airflow is imported only once the arguments are known good

        report = tasks.reconcile(config, args.since, args.until, args.redeliver, args.include_failed)
    except (LookupError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**report.as_dict(), "missing": report.missing}, default=str))
    else:
        print(report.summary())
        for category, items in report.listed.items():
            for item in items:
                print(f"  {category}: {json.dumps(item, default=str)}")
    return 1 if report.missing and not args.redeliver else 0


def _reference(value: str) -> str:
    try:
        return parse_reference(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _explain(args: argparse.Namespace) -> int:
    from outbox_relay_airflow.hooks import db_engine

    config = _service_or_none(args)
    if config is None:
        return 2
    engine = db_engine(config, pool_size=1)
    try:
        with engine.connect() as conn:
            explanation = Explainer(config).explain(conn, args.row)
    finally:
        engine.dispose()
    if explanation is None:
        print(not_found(config, args.row), file=sys.stderr)
        return 1
    print(json.dumps(explanation.as_dict(), default=str) if args.json else "\n".join(explanation.lines()))
    return 0


def _audit(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    if args.until is not None and args.since >= args.until:
        parser.error(f"--since {args.since} must be before --until {args.until}")
    config = _service_or_none(args)
    if config is None:
        return 2
    from outbox_relay_airflow import tasks

    try:  # JSON lists every message id; the text lists the first 100 of each class and says how many more
        report = tasks.audit(config, args.since, args.until, max_listed=None if args.json else AUDIT_LISTED)
    except ConfigurationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps({**report.as_dict(), "ok": report.ok}, default=str))
    else:
        print(report.summary())
        for category, ids in report.listed.items():
            for message_id in ids:
                print(f"  {category}: {message_id}")
            if report.unlisted(category):
                print(f"  {category}: ... and {report.unlisted(category)} more (--json lists them all)")
    return 0 if report.ok else 1


def _schema(output: Path | None) -> int:
    text = service_schema_text()
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
        print(f"wrote {output}")
    return 0


def _live_report(config: ServiceConfig) -> CheckReport:
    from outbox_relay_airflow.hooks import admin_client, db_engine

    report = CheckReport(config.service)
    try:
        engine = db_engine(config, pool_size=1)
        with engine.connect() as conn:
            check_database(conn, config, report)
        engine.dispose()
    except Exception as exc:
        report.problems.append(f"database connection {config.connections.db!r} failed: {exc}")
    try:
        check_broker(admin_client(config.connections.kafka), config, report)
    except Exception as exc:
        report.problems.append(f"Kafka connection {config.connections.kafka!r} failed: {exc}")
    return report


def _backlog(config: ServiceConfig) -> dict[str, Any]:
    from outbox_relay_airflow.hooks import db_engine

    engine = db_engine(config, pool_size=1)
    with engine.connect() as conn:
        summary = OutboxStore(config).backlog(conn)
    engine.dispose()
    return summary


def _validate(args: argparse.Namespace, plan: bool) -> int:
    directory = services_folder(args.services_dir)[0]
    loaded = read_services(args.services_dir)  # a missing folder's error names where its name came from
    failed = False
    for error in loaded.errors:
        print(f"INVALID {error}")
        failed = True
    unknown = sorted(set(args.services) - set(loaded.services) - {e.path.stem for e in loaded.errors})
    for name in unknown:
        print(f"UNKNOWN {name}: no {name}.yaml in {directory}")
        failed = True
    selected = [c for name, c in loaded.services.items() if not args.services or name in args.services]
    if not loaded.services and not loaded.errors:
        print(f"no service configs found in {directory}")
        return 1
    paths = {p.stem: p for p in config_files(directory)}
    for config in selected:
        report = CheckReport(config.service) if args.offline else _live_report(config)
        print(f"{'OK     ' if report.ok else 'PROBLEM'} {config.service} ({paths[config.service]})")
        for problem in report.problems:
            print(f"    problem: {problem}")
        for fix in report.fixes:
            print(f"    fix:     {fix}")
        for note in report.notes:
            print(f"    note:    {note}")
        if plan and report.ok and not args.offline:
            print(f"    backlog: {json.dumps(_backlog(config))}")
        failed = failed or not report.ok
    return 1 if failed else 0


def _run_now(args: argparse.Namespace) -> int:
    from outbox_relay_airflow import tasks

    context: dict[str, Any] = {"run_id": f"cli__{args.command}", "params": {}}
    if args.command == "relay":
        if args.shard is not None:
            config = _service_or_none(args)
            if config is None:
                return 2
            if not 0 <= args.shard < config.shards:
                print(f"--shard {args.shard}: service {config.service} has shards 0 to {config.shards - 1} "
                      f"(shards: {config.shards})", file=sys.stderr)  # fmt: skip
                return 2
        stats = tasks.run_relay(args.service, context, args.services_dir, shard=args.shard)
    else:
        runner = {"confirm": tasks.run_confirmations, "cleanup": tasks.run_cleanup}
        stats = runner[args.command](args.service, context, args.services_dir)
    print(json.dumps(stats, default=str))
    return 0


def _airflow_logs_to_stderr(args: argparse.Namespace) -> None:
    """Import Airflow with its log lines going to stderr: it writes them to the stdout of the moment it
    configures logging, and a warning there would corrupt a command's output (``--json`` piped to jq).
    Skipped where no Airflow is needed (importing it takes over a second)."""
    offline = args.command in {"validate", "plan"} and args.offline
    if args.command == "schema" or (offline and (args.services_dir or os.environ.get(SERVICES_DIR_ENV))):
        return
    with contextlib.redirect_stdout(sys.stderr):
        import airflow.configuration  # noqa: F401 - configures Airflow's logging on import


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _airflow_logs_to_stderr(args)
    look_up_like_airflow_cli()
    if args.command in {"validate", "plan"}:
        return _validate(args, plan=args.command == "plan")
    if args.command == "reconcile":
        return _reconcile(args, parser)
    if args.command == "schema":
        return _schema(args.output)
    if args.command == "init":
        return setup_commands.run_init(args)
    if args.command == "ddl":
        return setup_commands.run_ddl(args)
    if args.command == "explain":
        return _explain(args)
    if args.command == "audit":
        return _audit(args, parser)
    if args.command == "replay":
        return _replay(args)
    if args.command == "backfill":
        return _backfill(args)
    return _run_now(args)


if __name__ == "__main__":
    sys.exit(main())
