"""Did this relay run leave the service healthy? Rows it gave up on, and the service's SLO (the age of the
next row to send, of the oldest unconfirmed row), checked after the run's work is committed. The relay
DAG's ``check_health`` task fails (red run, Airflow's callbacks and notifiers fire) on any problem."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from outbox_relay.config import ServiceConfig
from outbox_relay.store.dashboard import DashboardQueries
from outbox_relay.store.retry_state import retry_state_for
from outbox_relay.store.table import OutboxTable


class HealthCheck:
    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        table = OutboxTable(config)
        self.queries = DashboardQueries(table, retry_state_for(table))

    def problems(self, conn: Connection, stats: dict[str, Any]) -> list[str]:
        """What is wrong, one sentence each (empty: healthy). ``stats``: the relay run's statistics."""
        c, slo = self.config, self.config.slo
        found = []
        given_up = int(stats.get("failed") or 0)
        if slo.fail_on_given_up_rows and given_up:
            found.append(
                f"this run gave up on {given_up} row(s) of {c.table} (out of attempts: FAILED"
                f"{', copied to ' + c.dead_letter_topic if c.dead_letter_topic else ''}); the relay task's log "
                f"names each row and error; send them again with: outbox-relay replay {c.service} --reason ..."
            )
        limits = (
            ("the next row to send has waited", slo.max_oldest_new_seconds, c.statuses.new, True),
            ("the oldest unconfirmed row was created", slo.max_unconfirmed_seconds, c.statuses.sent, False),
        )
        for what, limit, status, eligible in limits:
            if limit is None:
                continue
            age = self.queries.oldest_age_seconds(conn, status, eligible_only=eligible)
            if age is not None and age > limit:
                found.append(f"SLO breached: {what} {age}s ago, more than {limit:g}s (service {c.service})")
        return found
