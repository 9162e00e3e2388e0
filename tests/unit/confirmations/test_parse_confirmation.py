"""parse_confirmation: what a consumer's answer on the result topic means, and why a bad one is rejected
(the ingester counts and skips what raises, so every problem must raise the one error type)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from outbox_relay.confirmations import (
    FAILURE_WORDS,
    MAX_CONFIRMATION_BYTES,
    SUCCESS_WORDS,
    MalformedConfirmationError,
    parse_confirmation,
)
from outbox_relay.errors import OutboxRelayError
from outbox_relay.kafka.records import HEADER_MESSAGE_ID


class FakeMessage:
    """The part of confluent_kafka.Message that parse_confirmation reads."""

    def __init__(self, value: bytes | None, headers: list[tuple[str, bytes | None]] | None = None) -> None:
        self._value = value
        self._headers = headers

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self._headers

    def topic(self) -> str:
        return "orders.results"

    def partition(self) -> int:
        return 0

    def offset(self) -> int:
        return 42

    def error(self) -> None:
        return None


def _json(document: Any, headers: list[tuple[str, bytes | None]] | None = None) -> FakeMessage:
    return FakeMessage(json.dumps(document).encode(), headers)


def _malformed(message: FakeMessage) -> str:
    with pytest.raises(MalformedConfirmationError) as caught:
        parse_confirmation(message)
    return str(caught.value)


def test_the_accepted_words_are_the_documented_ones() -> None:
    """The README promises exactly these synonyms; a silently widened set would accept typos."""
    assert frozenset({"SUCCESS", "CONFIRMED", "OK"}) == SUCCESS_WORDS
    assert frozenset({"FAILED", "FAILURE", "ERROR"}) == FAILURE_WORDS


@pytest.mark.parametrize("status", ["SUCCESS", "CONFIRMED", "OK", "success", "Confirmed", "ok"])
def test_success_words_confirm(status: str) -> None:
    """Consumers differ in wording and case; all of these mean the message was handled."""
    confirmation = parse_confirmation(_json({"message_id": "m-1", "status": status}))
    assert confirmation.message_id == "m-1"
    assert confirmation.success is True
    assert confirmation.error is None


@pytest.mark.parametrize("status", ["FAILED", "FAILURE", "ERROR", "failed", "Failure", "error"])
def test_failure_words_fail_with_the_error_text(status: str) -> None:
    """A failure carries the consumer's error text, which ends up in the row's last_error."""
    confirmation = parse_confirmation(_json({"message_id": "m-2", "status": status, "error": "no stock"}))
    assert confirmation.message_id == "m-2"
    assert confirmation.success is False
    assert confirmation.error == "no stock"


def test_a_non_text_error_is_turned_into_text() -> None:
    """The error is stored in a text column, whatever JSON type the consumer sent."""
    confirmation = parse_confirmation(_json({"message_id": "m", "status": "FAILED", "error": {"code": 7}}))
    assert confirmation.error == "{'code': 7}"


def test_the_body_message_id_wins_over_the_header() -> None:
    """The body is the consumer's explicit answer; the header is only a fallback."""
    message = _json({"message_id": "from-body", "status": "OK"}, [(HEADER_MESSAGE_ID, b"from-header")])
    assert parse_confirmation(message).message_id == "from-body"


@pytest.mark.parametrize("body_id", [None, ""])
def test_the_message_id_falls_back_to_the_header(body_id: str | None) -> None:
    """Consumers that echo the relay's headers need not repeat the id in the body."""
    document: dict[str, Any] = {"status": "SUCCESS"}
    if body_id is not None:
        document["message_id"] = body_id
    headers: list[tuple[str, bytes | None]] = [("other", b"x"), (HEADER_MESSAGE_ID, b"hdr-7")]
    confirmation = parse_confirmation(_json(document, headers))
    assert HEADER_MESSAGE_ID == "outbox-message-id"
    assert confirmation.message_id == "hdr-7"
    assert confirmation.success is True


def test_a_header_without_a_value_is_no_message_id() -> None:
    """A null header value must not become the id 'None'."""
    message = _json({"status": "OK"}, [(HEADER_MESSAGE_ID, None)])
    assert "message_id" in _malformed(message)


def test_the_error_type_is_the_packages_own() -> None:
    """Callers catch OutboxRelayError / ValueError; the malformed error must be both."""
    assert issubclass(MalformedConfirmationError, OutboxRelayError)
    assert issubclass(MalformedConfirmationError, ValueError)


def test_no_value_is_malformed() -> None:
    """A tombstone (null value) answers nothing."""
    assert "empty" in _malformed(FakeMessage(None))


def test_an_empty_value_is_malformed() -> None:
    """Zero bytes are not a JSON document either."""
    assert "not JSON" in _malformed(FakeMessage(b""))


def test_a_value_over_the_limit_is_malformed_before_parsing() -> None:
    """A huge value is refused by size, naming both sizes, without parsing it."""
    value = b" " * (MAX_CONFIRMATION_BYTES + 1)
    text = _malformed(FakeMessage(value))
    assert str(MAX_CONFIRMATION_BYTES + 1) in text
    assert str(MAX_CONFIRMATION_BYTES) in text
    assert "exceeds" in text


def test_a_value_at_the_limit_is_parsed() -> None:
    """The limit itself is allowed (the check is 'larger than')."""
    body = json.dumps({"message_id": "m", "status": "OK"}).encode()
    value = body + b" " * (MAX_CONFIRMATION_BYTES - len(body))
    assert len(value) == MAX_CONFIRMATION_BYTES
    assert parse_confirmation(FakeMessage(value)).success is True


def test_a_value_that_is_not_utf8_is_malformed() -> None:
    """Bad bytes are named as an encoding problem, not as bad JSON."""
    assert _malformed(FakeMessage(b'{"message_id": "\xff\xfe"}')) == "value is not UTF-8"


def test_a_value_that_is_not_json_is_malformed() -> None:
    """The parser's own reason is kept, so the log says where the JSON broke."""
    text = _malformed(FakeMessage(b"{message_id: m}"))
    assert text.startswith("value is not JSON (")


@pytest.mark.parametrize(("document", "kind"), [([1, 2], "list"), ("SUCCESS", "str"), (3, "int")])
def test_json_that_is_not_an_object_is_malformed(document: Any, kind: str) -> None:
    """Only an object can carry message_id and status."""
    assert _malformed(_json(document)) == f"expected a JSON object, got {kind}"


@pytest.mark.parametrize("message_id", [None, "", 42, ["m"]])
def test_no_usable_message_id_is_malformed(message_id: Any) -> None:
    """Without an id (body or header) the answer cannot be matched to a row."""
    text = _malformed(_json({"message_id": message_id, "status": "OK"}))
    assert "no 'message_id'" in text
    assert HEADER_MESSAGE_ID in text


@pytest.mark.parametrize("status", ["MAYBE", "", None, 1, " OK"])
def test_an_unknown_status_is_malformed(status: Any) -> None:
    """Anything but the documented words is refused, naming the value received."""
    text = _malformed(_json({"message_id": "m", "status": status}))
    assert "'status' must be SUCCESS or FAILED" in text
    assert repr(status) in text


def test_a_missing_status_is_malformed() -> None:
    """An answer without a status says nothing about the outcome."""
    assert "'status' must be SUCCESS or FAILED, got None" in _malformed(_json({"message_id": "m"}))
