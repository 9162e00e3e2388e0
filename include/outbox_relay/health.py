"""Did this run leave the service healthy? For a relay run: rows it gave up on, and the service's SLO (the
age of the next row to send, of the oldest unconfirmed row). For a confirmations run: how many of the
consumers' answers in the last hour were FAILED. Checked after the run's work is committed; the DAG's
``check_health`` task fails (red run, Airflow's callbacks and notifiers fire) on any problem."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection

from outbox_relay.config import ServiceConfig
from outbox_relay.config.lifecycle import MIN_ANSWERS_FOR_SHARE
from outbox_relay.store.outbox import OutboxStore

COUNTED_UP_TO = 1_000_000  # backlog gauges stop counting here: the count must stay cheap on a huge backlog


class HealthCheck:
    def __init__(self, config: ServiceConfig, store: OutboxStore | None = None) -> None:
        self.config = config
        self.store = store or OutboxStore(config)

    def figures(self, conn: Connection) -> dict[str, int | None]:
        """The backlog after a run: NEW rows, the next row's age, and with confirmations the SENT rows and
        the oldest one's age (ages are None without a creation time, 0 when no row waits)."""
        c, q = self.config, self.store.figures
        has_age = c.columns.created_at is not None
        found: dict[str, int | None] = {
            "backlog": q.count(conn, c.statuses.new, COUNTED_UP_TO),
            "oldest_new_age_seconds": q.oldest_new_age_seconds(conn) or 0 if has_age else None,
        }
        if c.confirmation is not None:
            found["unconfirmed"] = q.count(conn, c.statuses.sent, COUNTED_UP_TO)
            found["oldest_unconfirmed_age_seconds"] = (
                q.oldest_unconfirmed_age_seconds(conn) or 0 if has_age else None
            )
        return found

    def problems(self, stats: dict[str, Any], figures: dict[str, int | None]) -> list[str]:
        """What is wrong, one sentence each (empty: healthy). ``stats``: the relay run's statistics;
        ``figures``: this check's ``figures``."""
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
            ("the next row to send has waited", slo.max_oldest_new_seconds, "oldest_new_age_seconds"),
            (
                "the oldest unconfirmed row was created",
                slo.max_unconfirmed_seconds,
                "oldest_unconfirmed_age_seconds",
            ),
        )
        for what, limit, figure in limits:
            age = figures.get(figure)
            if limit is not None and age is not None and age > limit:
                found.append(f"SLO breached: {what} {age}s ago, more than {limit:g}s (service {c.service})")
        return found

    def answer_figures(self, conn: Connection) -> dict[str, int | None]:
        """The consumers' answers in the last hour by the database clock (rows confirmed, or answered FAILED,
        since then: rows the relay gave up on have no confirmation time and are not answers). None when the
        table cannot tell (no confirmation time mapped, or no (status, updated_at) index to count by)."""
        st = self.config.statuses
        if self.config.confirmation is None or st.failed is None or st.confirmed is None:
            return {"failed_answers_last_hour": None, "answers_last_hour": None}
        failed = self.store.dashboard.per_minute(conn, "confirmed_at", [st.failed])
        answered = self.store.dashboard.per_minute(conn, "confirmed_at", [st.confirmed, st.failed])
        return {
            "failed_answers_last_hour": None if failed is None else sum(failed.values()),
            "answers_last_hour": None if answered is None else sum(answered.values()),
        }

    def answer_problems(self, figures: dict[str, int | None]) -> list[str]:
        """The consumers' FAILED answers against the SLO (empty: within it, or not countable)."""
        c, slo = self.config, self.config.slo
        failed, answered = figures.get("failed_answers_last_hour"), figures.get("answers_last_hour")
        if failed is None or answered is None:
            return []
        found = []
        how = f"consumers answered FAILED for {failed} of the {answered} rows of {c.table} answered in the last hour"
        replay = f"; see the FAILED rows on the Outbox page, and send them again with: outbox-relay replay {c.service}"
        if slo.max_failed_answers_per_hour is not None and failed > slo.max_failed_answers_per_hour:
            found.append(f"SLO breached: {how}, more than {slo.max_failed_answers_per_hour}{replay}")
        share = slo.max_failed_answer_share
        if share is not None and answered >= MIN_ANSWERS_FOR_SHARE and failed > share * answered:
            found.append(f"SLO breached: {how} ({failed / answered:.0%}), more than {share:.0%}{replay}")
        return found
