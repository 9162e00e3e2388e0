"""The recipes of docs/services.md for frameworks' own outbox tables, end to end on the real MariaDB and broker: the
framework's DDL as it publishes it, rows written the way the framework writes them, the documented service
file, `validate`, and a pipelined relay. Nothing is lost (read back with a second client), each key's
messages arrive in write order, and every row ends in the framework's own "done" state."""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text

from outbox_relay.checks import CheckReport, check_database
from outbox_relay.config import ServiceConfig
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import run_relay
from tests.readme import service_files

pytestmark = pytest.mark.integration

KEYS = [f"agg-{n}" for n in range(8)]
ROWS = 240

# eventuate-foundation/eventuate-common, mysql/3.create-message-table.sql (commit fc504a5), with
# ${EVENTUATE_OUTBOX_SUFFIX} empty; its USE and DROP lines left out (the test database is fresh).
EVENTUATE_DDL = [
    """CREATE TABLE message (
     id VARCHAR(255) PRIMARY KEY,
     destination LONGTEXT NOT NULL,
     headers LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
     payload LONGTEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci NOT NULL,
     published SMALLINT DEFAULT 0,
     message_partition SMALLINT,
     creation_time BIGINT
)""",
    "CREATE INDEX message_published_idx ON message(published, id)",
]
# dotnetcore/CAP, src/DotNetCore.CAP.MySql/IStorageInitializer.MySql.cs (commit 2df6ade),
# MySqlStorageInitializer.CreateDbTablesScript, the published table with the default prefix "cap".
CAP_DDL = [
    """CREATE TABLE IF NOT EXISTS `cap.published` (
  `Id` bigint NOT NULL,
  `Version` varchar(20) DEFAULT NULL,
  `Name` varchar(200) NOT NULL,
  `Content` longtext,
  `Retries` int(11) DEFAULT NULL,
  `Added` datetime NOT NULL,
  `ExpiresAt` datetime DEFAULT NULL,
  `StatusName` varchar(40) NOT NULL,
  PRIMARY KEY (`Id`),
  INDEX `IX_ExpiresAt`(`ExpiresAt`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"""
]


def _recipe(service: str, topic: str) -> ServiceConfig:
    """The documented service file, pointed at this test's topic, in batches small enough to pipeline."""
    document: dict[str, Any] = {"service": service, **service_files()[service]}
    document.update(topic=topic, batch_size=25)
    return ServiceConfig.model_validate(document)


def _validated(engine: Engine, config: ServiceConfig) -> None:
    """`validate` on the framework's table; a missing scan index is added with the DDL it prints."""
    report = CheckReport(config.service)
    with engine.connect() as conn:
        check_database(conn, config, report)
    for fix in report.fixes:
        assert fix.startswith("ALTER TABLE"), report
        with engine.begin() as conn:
            conn.execute(text(fix))
    report = CheckReport(config.service)
    with engine.connect() as conn:
        check_database(conn, config, report)
    assert report.problems == []


def _create(engine: Engine, ddl: list[str]) -> None:
    with engine.begin() as conn:
        for statement in ddl:
            conn.execute(text(statement))


RowWriter = Callable[[Connection, str, str, int], str]  # (conn, topic, key, n) -> the row's message id


def _relay_recipe(
    engine: Engine, topic: str, ddl: list[str], service: str, write: RowWriter, id_header: str
) -> None:
    """The framework's DDL, `validate` (and its index fix), ROWS rows of random keys written the
    framework's way, one relay: every message arrives once, each key's in write order."""
    create_topics(topic)
    _create(engine, ddl)
    config = _recipe(service, topic)
    _validated(engine, config)
    written: dict[str, list[str]] = defaultdict(list)
    rng = random.Random(5)
    with engine.begin() as conn:
        for n in range(ROWS):
            key = rng.choice(KEYS)
            written[key].append(write(conn, topic, key, n))
    stats = run_relay(config, engine)
    assert (stats.published, stats.failed) == (ROWS, 0)
    by_key: dict[str, list[str]] = defaultdict(list)
    for record in read_all(topic):
        by_key[str(record.key)].append(record.headers[id_header])
    assert by_key == written


class EventuateIds:
    """Eventuate's ApplicationIdGenerator text form: 16 hex digits of time, '-', 16 of a counter."""

    def __init__(self) -> None:
        self.counter = 0

    def next(self) -> str:
        self.counter += 1
        return f"{time.time_ns() // 1_000_000:016x}-{self.counter:016x}"


def _eventuate_writer() -> RowWriter:
    ids = EventuateIds()

    def write(conn: Connection, topic: str, key: str, n: int) -> str:
        """As Eventuate Tram's MessageProducer writes a domain event (MySqlDialect's time expression)."""
        return _write_eventuate(conn, topic, ids.next(), key, n)

    return write


def _write_eventuate(conn: Connection, topic: str, message_id: str, key: str, n: int) -> str:
    headers = {
        "ID": message_id,
        "PARTITION_ID": key,
        "DESTINATION": topic,
        "event-aggregate-type": "Order",
        "event-aggregate-id": key,
        "event-type": "OrderLineAdded",
        "DATE": "Sat, 1 Nov 2026 12:00:00 GMT",
    }
    conn.execute(
        text("insert into message(id, destination, headers, payload, creation_time, published) "
             "values(:id, :destination, :headers, :payload, ROUND(UNIX_TIMESTAMP(CURTIME(4)) * 1000), 0)"),
        {"id": message_id, "destination": topic, "headers": json.dumps(headers), "payload": json.dumps({"n": n})},
    )  # fmt: skip
    return message_id


def test_eventuate_tram_message_table(db_engine: Engine, topic_name: Callable[[str], str]) -> None:
    _relay_recipe(
        db_engine, topic_name("eventuate_recipe"), EVENTUATE_DDL, "eventuate", _eventuate_writer(), "ID"
    )
    with db_engine.connect() as conn:
        assert conn.execute(text("SELECT published, COUNT(*) FROM message GROUP BY 1")).all() == [(1, ROWS)]


SNOWFLAKE = 1_700_000_000_000 << 22  # CAP's ids: time-ordered 64-bit Snowflakes


def _write_cap(conn: Connection, topic: str, key: str | None, n: int) -> str:
    """As CAP's publisher stores a message: Snowflake id, the envelope, StatusName Scheduled. CAP writes the
    cap-kafka-key header only when the publisher gave a key (``key`` None: no header)."""
    snowflake = SNOWFLAKE + n
    message_id = str(snowflake)
    headers = {
        "cap-msg-id": message_id,
        "cap-msg-name": topic,
        "cap-msg-type": "OrderLineAdded",
        "cap-senttime": "2026-11-01 12:00:00 +00:00",
        "cap-corr-id": message_id,
        "cap-corr-seq": "0",
        **({} if key is None else {"cap-kafka-key": key}),
    }
    conn.execute(
        text("INSERT INTO `cap.published` (`Id`,`Version`,`Name`,`Content`,`Retries`,`Added`,`ExpiresAt`,"
             "`StatusName`) VALUES (@Id,@Version,@Name,@Content,@Retries,@Added,@ExpiresAt,@StatusName)"
             .replace("@", ":")),
        {"Id": snowflake, "Version": "v1", "Name": topic, "Retries": 0, "ExpiresAt": None,
         "Content": json.dumps({"Headers": headers, "Value": {"n": n, "key": key}}),
         "Added": "2026-11-01 12:00:00", "StatusName": "Scheduled"},
    )  # fmt: skip
    return message_id


def test_dotnetcore_cap_published_table(db_engine: Engine, topic_name: Callable[[str], str]) -> None:
    topic = topic_name("cap_recipe")  # CAP has no (StatusName, Added, Id) index: validate's DDL adds it
    _relay_recipe(db_engine, topic, CAP_DDL, "cap_orders", _write_cap, "cap-msg-id")
    assert all(json.loads(r.value)["key"] == r.key for r in read_all(topic))  # the Value is the body
    with db_engine.connect() as conn:
        states = conn.execute(text("SELECT `StatusName`, COUNT(*) FROM `cap.published` GROUP BY 1")).all()
    assert states == [("Succeeded", ROWS)]


def test_cap_rows_without_a_kafka_key_header_are_keyed_by_their_message_id(
    db_engine: Engine, topic_name: Callable[[str], str]
) -> None:
    """The recipe's key is tried in order: CAP's cap-kafka-key header where the publisher set one, else the
    cap-msg-id (what CAP's own Kafka transport does). Copied verbatim, no row fails for a missing key."""
    topic = topic_name("cap_keys")
    create_topics(topic)
    _create(db_engine, CAP_DDL)
    config = _recipe("cap_orders", topic)
    _validated(db_engine, config)
    with db_engine.begin() as conn:
        keyed = {_write_cap(conn, topic, f"order-{n % 2}", n): f"order-{n % 2}" for n in range(4)}
        unkeyed = {_write_cap(conn, topic, None, n): None for n in range(4, 8)}
    stats = run_relay(config, db_engine)
    assert (stats.published, stats.failed) == (8, 0)
    keys = {r.headers["cap-msg-id"]: r.key for r in read_all(topic)}
    assert keys == {**keyed, **{message_id: message_id for message_id in unkeyed}}


@pytest.mark.parametrize(
    "document",
    [
        '{"Headers": {"k": "key-1", "id": "m1"}}',
        '{"Headers": {"id": "m1"}}',
        '{"Headers": {"k": null, "id": "m1"}}',
        '{"Headers": {"k": 7, "id": "m1"}}',
        '{"Headers": {"k": {"a": 1}}}',
        '{"Headers": {}}',
        "not json",
    ],
)
def test_the_claims_sql_and_the_relays_own_reading_agree(db_engine: Engine, document: str) -> None:
    """What MariaDB's JSON functions give for a chain of places (the claim's SQL) is what the relay gives
    when it reads the documents itself (after a server refused a deep document)."""
    from outbox_relay.store.json_paths import value_at
    from outbox_relay.store.table import _json_sql

    paths = ("$.Headers.k", "$.Headers.id")
    with db_engine.connect() as conn:
        in_sql = conn.execute(
            text(f"SELECT {_json_sql(':doc', paths, unquote=True)}"), {"doc": document}
        ).scalar()
    assert in_sql == value_at(document, paths, True)
