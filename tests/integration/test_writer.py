"""The writer services use for the standard table, on the real MariaDB and broker: messages commit or roll
back with the caller's business rows, get time-ordered ids, and reach Kafka as written; through a
SQLAlchemy Connection, an ORM Session and a plain PyMySQL connection. A bad message writes nothing."""

from __future__ import annotations

import json
from collections.abc import Callable

import pymysql
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from outbox_relay.writer import OutboxMessage, OutboxWriteError, write_outbox
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import run_relay

pytestmark = pytest.mark.integration


def _stored(engine: Engine) -> list[tuple[str, str, str, str]]:
    with engine.connect() as conn:
        rows = conn.execute(
            text("SELECT message_id, aggregate_id, status, payload FROM outbox_message ORDER BY id")
        )
        return [tuple(r) for r in rows]  # type: ignore[misc]


def _order(n: int, topic: str, **extra: object) -> OutboxMessage:
    return OutboxMessage(
        topic=topic, key=f"order-{n % 2}", event_type="OrderPlaced", payload={"n": n}, **extra
    )  # type: ignore[arg-type]


def test_messages_commit_and_roll_back_with_the_business_rows(
    db_engine: Engine, topic_name: Callable[[str], str], service_config: Callable[..., object]
) -> None:
    topic = topic_name("writer")
    create_topics(topic)
    with db_engine.begin() as conn:
        conn.execute(text("CREATE TABLE orders (order_id VARCHAR(20) PRIMARY KEY)"))
    with pytest.raises(RuntimeError), db_engine.begin() as conn:
        conn.execute(text("INSERT INTO orders VALUES ('rolled-back')"))
        write_outbox(conn, _order(0, topic))
        raise RuntimeError("the business write fails after the outbox write")
    assert _stored(db_engine) == []

    with db_engine.begin() as conn:
        conn.execute(text("INSERT INTO orders VALUES ('o1')"))
        ids = write_outbox(conn, [_order(n, topic, headers={"tenant": "eu"}) for n in range(5)])
    assert ids == sorted(ids) and len(set(ids)) == 5 and all(i[14] == "7" for i in ids)  # UUIDv7, time order
    assert [(r[0], r[1], r[2], json.loads(r[3])) for r in _stored(db_engine)] == [
        (i, f"order-{n % 2}", "NEW", {"n": n}) for n, i in enumerate(ids)
    ]
    stats = run_relay(service_config(topic=topic), db_engine)  # type: ignore[operator]
    assert stats.published == 5
    records = read_all(topic)
    assert sorted((r.headers["outbox-message-id"], r.key, json.loads(r.value)["n"], r.headers["tenant"])
                  for r in records) == sorted((i, f"order-{n % 2}", n, "eu") for n, i in enumerate(ids))  # fmt: skip


def test_an_orm_session_and_a_plain_pymysql_connection(
    db_engine: Engine, topic_name: Callable[[str], str]
) -> None:
    topic = topic_name("writer_dbapi")
    with Session(db_engine) as session, session.begin():
        from_session = write_outbox(session, [_order(1, topic), _order(2, topic)])
    url = db_engine.url
    raw = pymysql.connect(host=url.host, port=url.port or 3306, user=url.username, password=url.password or "",
                          database=url.database, charset="utf8mb4")  # fmt: skip
    try:
        from_dbapi = write_outbox(raw, _order(3, topic, message_id="given-id"))
        assert _stored(db_engine)[2:] == []  # not committed yet: the caller's transaction decides
        raw.commit()
    finally:
        raw.close()
    assert from_dbapi == ["given-id"]
    assert [r[0] for r in _stored(db_engine)] == [*from_session, "given-id"]


def test_one_bad_message_writes_nothing_and_is_named(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        with pytest.raises(OutboxWriteError) as caught:
            write_outbox(
                conn, [_order(1, "t"), OutboxMessage("t", "k", "E", {"at": float("nan")}), _order(3, "t")]
            )
        assert _stored(db_engine) == []
        assert write_outbox(conn, []) == []
    assert str(caught.value).startswith(
        "outbox message 2 of 3 (topic 't', key 'k'): payload cannot be written as JSON"
    )
    assert str(caught.value).endswith("; nothing was written")
    with pytest.raises(
        TypeError, match=r"needs the connection .* of the transaction that writes the business rows"
    ):
        write_outbox(db_engine, _order(1, "t"))
