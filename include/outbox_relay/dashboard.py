"""What the Outbox page shows of one service: its figures, its FAILED / unconfirmed rows, one row in full.

Read-only: the page never writes the outbox (its actions trigger replay DAG runs). Every figure comes from
one bounded, index-backed statement (``store.figures``, ``store.dashboard``), so the page stays fast on big tables.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from outbox_relay.activity import HourActivity, backlog_notes, backlog_series, per_minute_series
from outbox_relay.checks import CheckReport, check_database
from outbox_relay.config import ServiceConfig
from outbox_relay.explain import Explainer, Explanation
from outbox_relay.health import HealthCheck
from outbox_relay.models import ListedRow, RowContent, RowSearch, StatsMixin
from outbox_relay.store.dashboard import MATCHES_COUNTED
from outbox_relay.store.outbox import OutboxStore

__all__ = [
    "MATCHES_COUNTED",
    "Dashboard",
    "ListedRow",
    "RowDetail",
    "RowSearch",
    "SearchResult",
    "ServiceFigures",
]

PAGE_SIZE = 50


@dataclass
class ServiceFigures(StatsMixin):
    service: str
    table: str
    rows_by_status: dict[str, int] = field(default_factory=dict)
    new: int = 0
    oldest_eligible_new_seconds: int | None = None
    held_back: int = 0
    unconfirmed: int = 0  # SENT rows, for a service with confirmations
    oldest_unconfirmed_seconds: int | None = None
    failed: int = 0  # FAILED rows, or NEW rows given up on
    top_errors: list[tuple[str, int]] = field(default_factory=list)
    published_per_minute: dict[str, int] | None = None  # last hour, by the rows' send time
    confirmed_per_minute: dict[str, int] | None = None
    problems: list[str] = field(default_factory=list)  # the `validate` checks that failed
    fixes: list[str] = field(default_factory=list)
    # The consumers' answers in the last hour (None: not countable) and the SLO breaches they make.
    failed_answers_last_hour: int | None = None
    answers_last_hour: int | None = None
    breaches: list[str] = field(default_factory=list)
    activity: HourActivity = field(default_factory=HourActivity)  # the chart: the last hour per minute


@dataclass
class SearchResult(StatsMixin):
    """What a search found: a row by message id or primary key, and the rows of that key."""

    query: str
    row_message_id: str | None = None
    key_rows: list[ListedRow] = field(default_factory=list)
    scanned_newest: int | None = None  # the key has no index: only this many newest rows were read


@dataclass
class RowDetail(StatsMixin):
    explanation: dict[str, Any]
    content: RowContent


class Dashboard:
    def __init__(self, config: ServiceConfig) -> None:
        self.config = config
        self.store = OutboxStore(config)
        self.queries = self.store.dashboard
        self.activity = self.store.activity
        self.explainer = Explainer(config, self.store)
        self.health = HealthCheck(config, self.store)

    def figures(self, conn: Connection, with_activity: bool = False) -> ServiceFigures:
        """The service's figures (``with_activity``: and the last hour per minute, for one service's page);
        a table that is missing or mapped wrong gives its problems instead."""
        c = self.config
        figures = ServiceFigures(c.service, c.table)
        report = CheckReport(c.service)
        check_database(conn, c, report)
        figures.problems, figures.fixes = report.problems, report.fixes
        try:
            self._fill(conn, figures)
            if with_activity:
                figures.activity = self._activity(conn, figures)
        except DBAPIError as exc:  # a missing table or column: the checks above name it
            conn.rollback()
            figures.problems.append(f"the figures could not be read: {exc.orig}")
        return figures

    def _fill(self, conn: Connection, figures: ServiceFigures) -> None:
        c = self.config
        q, backlog, st = self.queries, self.store.figures, c.statuses
        figures.rows_by_status = backlog.by_status(conn)
        given_up = backlog.given_up_new(conn)
        figures.new = figures.rows_by_status.get(str(st.new), 0) - given_up
        figures.oldest_eligible_new_seconds = backlog.oldest_new_age_seconds(conn)
        figures.held_back = q.held_back(conn)
        figures.failed = given_up if st.failed is None else figures.rows_by_status.get(str(st.failed), 0)
        figures.top_errors = q.top_errors(conn) if figures.failed else []
        if c.confirmation is not None:
            figures.unconfirmed = figures.rows_by_status.get(str(st.sent), 0)
            figures.oldest_unconfirmed_seconds = backlog.oldest_unconfirmed_age_seconds(conn)
        published = [s for s in (st.sent, st.confirmed) if s is not None]
        figures.published_per_minute = q.per_minute(conn, "sent_at", published)
        if st.confirmed is not None:
            figures.confirmed_per_minute = q.per_minute(conn, "confirmed_at", [st.confirmed])
        answers = self.health.answer_figures(conn)
        figures.failed_answers_last_hour = answers["failed_answers_last_hour"]
        figures.answers_last_hour = answers["answers_last_hour"]
        figures.breaches = self.health.answer_problems(answers)

    def _activity(self, conn: Connection, figures: ServiceFigures) -> HourActivity:
        minutes = self.activity.hour(conn)
        backlog = self.activity.backlog_rows(conn, minutes[0])
        return HourActivity(
            minutes=minutes,
            published=per_minute_series(minutes, figures.published_per_minute),
            confirmed=per_minute_series(minutes, figures.confirmed_per_minute),
            failed=per_minute_series(minutes, self.activity.failed_per_minute(conn)),
            backlog=None if backlog is None else backlog_series(minutes, backlog),
            notes=backlog_notes(self.config, backlog),
        )

    def rows(
        self, conn: Connection, wanted: RowSearch, before: Any = None, limit: int = PAGE_SIZE
    ) -> list[ListedRow]:
        return self.queries.rows(conn, wanted, before, max(1, min(limit, 500)))

    def count_matching(self, conn: Connection, wanted: RowSearch) -> int:
        return self.queries.count_matching(conn, wanted)

    def search(self, conn: Connection, query: str, limit: int = PAGE_SIZE) -> SearchResult:
        """The row whose message id or primary key ``query`` is, and the rows whose key it is (a value can
        be both: ids and keys are often numbers)."""
        query = query.strip()
        if not query:
            return SearchResult(query)
        found = self.store.explain.find(conn, query)
        rows, scanned = self.queries.rows_of_key(conn, query, limit)
        return SearchResult(query, None if found is None else found.message_id, rows, scanned)

    def row(self, conn: Connection, reference: str) -> RowDetail | None:
        """A row by message id or primary key: where it stands and why, its history, its content."""
        explanation: Explanation | None = self.explainer.explain(conn, reference)
        if explanation is None:
            return None
        return RowDetail(explanation.as_dict(), self.queries.content(conn, explanation.row_id))
