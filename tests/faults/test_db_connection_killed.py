"""Scenario 4: the relay's database connection is killed (KILL CONNECTION from another session) during
the claim, during the SENT update, and at COMMIT of a batch in the middle of a run."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, event, text

from outbox_relay.relay.engine import OutboxRelay, RelayDatabaseError, RunRequest
from outbox_relay.store.outbox import OutboxStore
from tests.faults.conftest import Broker
from tests.faults.history import check_history
from tests.faults.support import service
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, relay_publisher, run_relay

pytestmark = pytest.mark.integration

ROWS, BATCH = 150, 50


def _kill(admin: Engine, conn: Connection) -> None:
    """KILL CONNECTION the relay's session from another session."""
    thread_id = conn.connection.dbapi_connection.thread_id()  # type: ignore[union-attr]
    with admin.connect() as other:
        other.execute(text("KILL CONNECTION :id"), {"id": thread_id})


class KillingRepository:
    """The relay's repository, killing its connection at one point of the second batch."""

    def __init__(self, repo: OutboxStore, admin: Engine, engine: Engine, moment: str) -> None:
        self.repo, self.admin, self.moment = repo, admin, moment
        self.calls = {"claim": 0, "mark_sent": 0}
        self.killed = False
        self.commit_pending: Connection | None = None
        event.listen(engine, "commit", self._at_commit)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.repo, name)

    def claim(self, conn: Connection, *args: Any, **kwargs: Any) -> Any:
        if self.moment == "claim" and self._due("claim"):
            _kill(self.admin, conn)
        return self.repo.claim(conn, *args, **kwargs)

    def mark_sent(self, conn: Connection, *args: Any, **kwargs: Any) -> int:
        due = self._due("mark_sent")
        if self.moment == "sent_update" and due:
            _kill(self.admin, conn)
        updated = self.repo.mark_sent(conn, *args, **kwargs)
        if self.moment == "commit" and due:
            self.commit_pending = conn  # the UPDATE ran; the connection dies as COMMIT is sent
        return updated

    def _due(self, method: str) -> bool:
        """True on the second call of ``method`` (each runs in order on its own thread when pipelined)."""
        self.calls[method] += 1
        if self.calls[method] == 2 and not self.killed:
            self.killed = True
            return True
        return False

    def _at_commit(self, conn: Connection) -> None:
        if self.commit_pending is not None and conn is self.commit_pending:
            self.commit_pending = None
            _kill(self.admin, conn)


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "serial"])
@pytest.mark.parametrize("moment", ["claim", "sent_update", "commit"])
def test_killed_db_connection_fails_the_run_marks_nothing_unacked_and_the_retry_converges(
    moment: str,
    pipelining: bool,
    db_engine: Engine,
    topic_name: Callable[[str], str],
    broker: Broker,
    record_figures: Callable[..., None],
) -> None:
    topic = topic_name(f"dbkill.{moment}")
    create_topics(topic, bootstrap=broker.bootstrap)
    insert_rows(db_engine, topic, [f"k{i % 6}" for i in range(ROWS)])
    config = service(topic, batch_size=BATCH, pipelining=pipelining)
    relay = OutboxRelay(config, db_engine, relay_publisher(config, broker.bootstrap))
    admin = db_engine.execution_options()  # same server, a different pooled session
    killer = KillingRepository(relay.store, admin, db_engine, moment)
    relay.store = killer  # type: ignore[assignment]

    with pytest.raises(RelayDatabaseError, match="database error while relaying outbox_message") as failure:
        relay.run(RunRequest(run_id=f"killed-at-{moment}"))
    assert killer.killed and "Lost connection to MySQL server" in str(failure.value)

    before = check_history(db_engine, [topic], broker.bootstrap)
    assert before.sent_without_ack == 0
    retry = run_relay(config, db_engine, run_id="retry", bootstrap=broker.bootstrap)
    history = check_history(db_engine, [topic], broker.bootstrap, consume=True)
    record_figures(
        history.figures(),
        moment=moment,
        pipelining=pipelining,
        error=f"{type(failure.value).__name__}: {str(failure.value)[:200]}",
        sent_before_retry=ROWS - before.stuck,
        published_by_retry=retry.published,
    )
    # Pipelined, batch n+1 may be acknowledged while batch n's SENT update dies: two batches re-published.
    history.assert_converged(max_duplicates=2 * BATCH if pipelining else BATCH)
