"""What the writer refuses before anything reaches the table, and how it says so."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from outbox_relay.writer import OutboxMessage, OutboxWriteError, write_outbox


class _NoTable:
    """A DB-API connection that must never be reached."""

    def cursor(self) -> Any:
        raise AssertionError("a refused message must not reach the database")


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (OutboxMessage("bad topic!", "k", "E", {}), "'bad topic!' is not a valid Kafka topic name"),
        (OutboxMessage("t", "k" * 192, "E", {}), "key has 192 characters; the column holds 191"),
        (OutboxMessage("t", "k", "", {}), "key and event_type must not be empty"),
        (OutboxMessage("t", 42, "E", {}), "key must be a string, not int"),  # type: ignore[arg-type]
        (OutboxMessage("t", "k", "E", {}, message_id="x" * 37), "message_id has 37 characters"),
        (OutboxMessage("t", "k", "E", "{not json"), "payload is not valid JSON"),
        (OutboxMessage("t", "k", "E", b"\xff"), "payload is not valid UTF-8"),
        (OutboxMessage("t", "k", "E", "NaN"), "payload is not valid JSON"),
        (OutboxMessage("t", "k", "E", {"at": datetime(2026, 1, 1)}), "type datetime is not JSON serializable"),
        (OutboxMessage("t", "k", "E", {}, headers={"n": 1}), "header 'n': names must be non-empty strings"),  # type: ignore[dict-item]
        (OutboxMessage("t", "k", "E", {}, headers=[("a", "b")]), "headers must be a mapping"),  # type: ignore[arg-type]
        (OutboxMessage("t", "k", "E", {}, not_before=datetime(2026, 1, 1)), "2026-01-01T00:00:00 has no time zone"),
        (OutboxMessage("t", "k", "E", {}, not_before=timedelta(seconds=-1)), "not_before is a negative delay"),
        (OutboxMessage("t", "k", "E", {}, not_before=60), "a timedelta or an aware datetime, not int"),  # type: ignore[arg-type]
    ],
)  # fmt: skip
def test_bad_messages_are_refused_by_name(message: OutboxMessage, words: str) -> None:
    with pytest.raises(OutboxWriteError) as caught:
        write_outbox(_NoTable(), [OutboxMessage("ok", "k", "E", {}), message])
    assert str(caught.value).startswith(
        f"outbox message 2 of 2 (topic {message.topic!r}, key {message.key!r}): "
    )
    assert words in str(caught.value)


def test_json_text_is_kept_as_written_and_values_are_serialised() -> None:
    written: list[Any] = []

    class Cursor:
        def executemany(self, sql: str, rows: list[dict[str, Any]]) -> None:
            written.append((sql, rows))

        def close(self) -> None:
            pass

    class Conn:
        def cursor(self) -> Cursor:
            return Cursor()

    ids = write_outbox(
        Conn(), [OutboxMessage("t", "k", "E", '{"a": 1}'), OutboxMessage("t", "k", "E", {"ü": [1]})]
    )
    ((sql, rows),) = written
    assert sql.startswith("INSERT INTO `outbox_message` (`message_id`, `aggregate_id`, `event_type`, `topic`")
    assert "%(payload)s" in sql
    assert [r["payload"] for r in rows] == ['{"a": 1}', '{"ü":[1]}']
    assert [r["message_id"] for r in rows] == ids and ids[0] < ids[1]
    assert rows[0]["headers"] is None
