"""The rows an audit compares with the topic: those created in a time window, read in bounded chunks."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, text

from outbox_relay.errors import ConfigurationError
from outbox_relay.models import AuditedRow
from outbox_relay.store.naming import expanding
from outbox_relay.store.table import OutboxTable


class AuditQueries:
    def __init__(self, table: OutboxTable) -> None:
        created = table.column("created_at")
        if created is None:
            raise ConfigurationError(
                f"service {table.config.service!r}: an audit selects rows by creation time, "
                f"but table {table.config.table} has no columns.created_at mapped"
            )
        self.table = t = table
        self.published = [s for s in (t.statuses.sent, t.statuses.confirmed) if s is not None]
        select = [
            f"{t.id_col}",
            f"{t.status_col}",
            t.column("message_id") or "NULL",
            t.column("key") or "NULL",
        ]
        topic = t.column("topic")
        self._topics_sql = None
        if topic is not None:
            self._topics_sql = expanding(
                f"SELECT DISTINCT {topic} FROM {t.name} WHERE {t.created('>=', ':since')} AND "
                f"{t.created('<', ':until')}"
                f"{t.row_filter} AND {topic} IS NOT NULL AND {t.status_in('published', self.published)}",
                "published",
            )
        self._sql = text(
            f"SELECT {', '.join(select)} FROM {t.name} WHERE {t.created('>=', ':since')} AND "
            f"{t.created('<', ':until')}{t.row_filter} AND {t.id_col} > :after ORDER BY {t.id_col} LIMIT :limit"
        )

    def now(self, conn: Connection) -> datetime:
        value = conn.execute(text("SELECT NOW(6)")).scalar_one()
        return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))

    def topics(self, conn: Connection, since: datetime, until: datetime) -> set[str]:
        """The topics the window's published rows name themselves (none without a topic column); rows never
        published may name topics that do not exist."""
        if self._topics_sql is None:
            return set()
        params = {"since": since, "until": until, "published": self.published, **self.table.filter_params}
        return {str(r[0]) for r in conn.execute(self._topics_sql, params) if str(r[0]).strip()}

    def rows(
        self, conn: Connection, since: datetime, until: datetime, after: Any, limit: int
    ) -> list[AuditedRow]:
        t = self.table
        params = {"since": since, "until": until, "after": after, "limit": limit, **t.filter_params}
        return [
            AuditedRow(r[0], t.message_id_for(r[0], r[2]), r[3], r[1])
            for r in conn.execute(self._sql, params)
        ]
