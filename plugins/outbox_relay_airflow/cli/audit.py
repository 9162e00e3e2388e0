"""``audit``: did we lose anything? Read the topic back and compare it with the table for a window."""

from __future__ import annotations

import argparse

from outbox_relay.requests import AuditRequest
from outbox_relay_airflow.cli.arguments import add_json, request_from_args, service_arguments
from outbox_relay_airflow.cli.command import Command, print_json, service_of
from outbox_relay_airflow.cli.exits import FOUND, OK

AUDIT_LISTED = 100  # message ids per class in the text report


def _audit(args: argparse.Namespace) -> int:
    from outbox_relay_airflow import operations  # imports Airflow: after its logging goes to stderr

    request = request_from_args(AuditRequest, args)
    config = service_of(args)
    # JSON lists every message id; the text lists the first 100 of each class and says how many more
    report = operations.audit(config, request, max_listed=None if args.json else AUDIT_LISTED)
    if args.json:
        print_json({**report.as_dict(), "ok": report.ok})
    else:
        print(report.summary())
        for category, ids in report.listed.items():
            for message_id in ids:
                print(f"  {category}: {message_id}")
            if report.unlisted(category):
                print(f"  {category}: ... and {report.unlisted(category)} more (--json lists them all)")
    return OK if report.ok else FOUND


COMMANDS = [
    Command(
        "audit",
        "did we lose anything? read the topic back and compare it with the table for a time window",
        service_arguments(AuditRequest, add_json),
        _audit,
        description="Reports every class of row the window holds: sent_not_on_topic (lost), order_violations, "
        "on_topic_not_marked, not_sent, failed, unconfirmed, confirmed, duplicates; the text lists 100 ids of "
        "each, --json all. Exit status 0: nothing lost and per-key order kept; 1: rows marked sent are missing "
        "from the topic, or a key's messages are out of order; 2: bad arguments or configuration. Times "
        "without an offset are in the service's db_time_zone.",
    )
]
