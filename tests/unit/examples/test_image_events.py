"""The S3 notification parser of the image upload scenario: every record, clear reasons, stable ids."""

from __future__ import annotations

import json
from urllib.parse import quote_plus

import pytest

from outbox_examples.image_upload.events import (
    RecordRejectedError,
    decode_key,
    parse_key,
    parse_notification,
)
from outbox_examples.image_upload.objectstore import s3_record
from outbox_examples.image_upload.publishing import Topics, outbound_messages

BUCKET = "images"


def _doc(*records: dict[str, object]) -> dict[str, object]:
    return {"Records": list(records)}


def test_every_record_is_processed_in_order_not_only_the_first() -> None:
    parsed = parse_notification(
        _doc(
            s3_record(BUCKET, "part%2F3738-1680862599359.jpg", 41762, sequencer="01"),
            s3_record(BUCKET, "part/3739-1680862599360.PNG", 5, sequencer="02"),
            s3_record(BUCKET, "part/3738-1680862599999.webp", 7, sequencer="03"),
        )
    )
    assert [(e.service, e.image_id, e.key) for e in parsed.accepted] == [
        ("part", 3738, "part/3738-1680862599359.jpg"),
        ("part", 3739, "part/3739-1680862599360.PNG"),
        ("part", 3738, "part/3738-1680862599999.webp"),
    ]
    assert parsed.accepted[0].body() == {
        "service": "part",
        "image_id": 3738,
        "bucket": BUCKET,
        "key": "part/3738-1680862599359.jpg",
        "size": 41762,
        "event_time": "2026-01-01T00:00:00.000Z",
    }
    assert not parsed.rejected and not parsed.ignored


def test_test_event_foreign_sources_and_non_create_events_are_ignored_with_their_reason() -> None:
    test_event = parse_notification({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": BUCKET})
    assert not test_event.accepted and not test_event.rejected
    assert "s3:TestEvent" in test_event.ignored[0].reason
    parsed = parse_notification(
        _doc(
            s3_record(BUCKET, "part/1-2.jpg", 3, source="aws:sqs"),
            s3_record(BUCKET, "part/1-2.jpg", 3, "ObjectRemoved:Delete"),
            s3_record(BUCKET, "part/1-2.jpg", 3, "ObjectCreated:CompleteMultipartUpload"),
        )
    )
    assert [i.where for i in parsed.ignored] == ["notification Records[0]", "notification Records[1]"]
    assert "aws:sqs" in parsed.ignored[0].reason and "ObjectRemoved:Delete" in parsed.ignored[1].reason
    assert [e.image_id for e in parsed.accepted] == [1]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (s3_record(BUCKET, "part/1-2.jpg", 0), "is empty (s3.object.size=0)"),
        (s3_record(BUCKET, "part/1-2.txt", 9), "extension 'txt', not an image"),
        (s3_record(BUCKET, "activity1.png", 9), "one folder level"),
        (s3_record(BUCKET, "a/b/1-2.png", 9), "one folder level"),
        (s3_record(BUCKET, "part/x-2.png", 9), "is not '<imageId>-<epochMillis>.<ext>'"),
        (s3_record(BUCKET, "part/1-2.jpg", "9"), "'s3.object.size' of 'part/1-2.jpg' is '9', not an integer"),  # type: ignore[arg-type]
        (s3_record(BUCKET, "part%FF/1-2.jpg", 9), "does not URL-decode to UTF-8"),
        (
            {"eventSource": "aws:s3", "eventName": "ObjectCreated:Put", "eventTime": "t"},
            "'s3.bucket.name' is missing",
        ),
    ],
)
def test_rejects_name_the_record_and_what_is_wrong(record: dict[str, object], reason: str) -> None:
    parsed = parse_notification(_doc(s3_record(BUCKET, "part/5-6.jpg", 1), record), where="sqs:m1")
    assert [e.image_id for e in parsed.accepted] == [5]
    assert len(parsed.rejected) == 1
    assert parsed.rejected[0].where == "sqs:m1 Records[1]"
    assert reason in parsed.rejected[0].reason


def test_a_body_that_is_not_a_notification_is_rejected_whole() -> None:
    assert "not JSON" in parse_notification("{oops").rejected[0].reason
    assert "not an object" in parse_notification("[1]").rejected[0].reason
    assert "no 'Records' list" in parse_notification({"Records": "x"}).rejected[0].reason


def test_keys_are_form_decoded_spaces_plus_signs_and_non_ascii() -> None:
    key = "galería de fotos/12-1680862599359.jpg"
    assert decode_key(quote_plus(key)) == key
    assert decode_key("a+b%2Bc") == "a b+c"
    parsed = parse_notification(_doc(s3_record(BUCKET, quote_plus(key), 3)))
    assert (parsed.accepted[0].service, parsed.accepted[0].image_id) == ("galería de fotos", 12)
    assert parse_key("part/7-99.JPEG").extension == "jpeg"
    with pytest.raises(RecordRejectedError, match="not an image"):
        parse_key("part/7-99")


def test_message_ids_are_deterministic_and_distinguish_events() -> None:
    def ids(*records: dict[str, object]) -> list[str]:
        return [e.message_id for e in parse_notification(_doc(*records)).accepted]

    with_seq = s3_record(BUCKET, "part%2F1-2.jpg", 3, sequencer="AA")
    assert ids(with_seq) == ids(json.loads(json.dumps(with_seq)))  # redelivered copy: same id
    assert ids(with_seq) == ids(s3_record(BUCKET, "part/1-2.jpg", 3, sequencer="AA"))  # decoded key counts
    assert ids(with_seq) != ids(s3_record(BUCKET, "part/1-2.jpg", 3, sequencer="AB"))  # overwritten object
    no_seq = s3_record(BUCKET, "part/1-2.jpg", 3)  # moto sends no sequencer: eTag + event time
    later = s3_record(BUCKET, "part/1-2.jpg", 3, event_time="2026-01-01T00:00:01.000Z")
    assert ids(no_seq) == ids(no_seq) and ids(no_seq) != ids(later)


def test_outbound_messages_are_keyed_by_image_id_and_rejects_go_to_the_reject_topic() -> None:
    parsed = parse_notification(
        _doc(s3_record(BUCKET, "part/42-1.jpg", 3, sequencer="1"), s3_record(BUCKET, "part/43-1.txt", 3))
    )
    messages = outbound_messages(parsed, Topics("img", "img.rejected"), "test")
    assert [(m.topic, m.key) for m in messages] == [("img", b"42"), ("img.rejected", b"part/43-1.txt")]
    headers = dict(messages[0].headers)
    assert headers["outbox-message-id"].decode() == parsed.accepted[0].message_id
    assert json.loads(messages[1].value)["reason"].startswith("key 'part/43-1.txt' has extension 'txt'")
    assert dict(messages[1].headers)["outbox-error"]


def test_drain_settings_come_from_env_then_the_variable_and_name_bad_fields(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from outbox_examples.image_upload.settings import SettingsError, load_settings

    monkeypatch.setenv("IMAGE_EVENTS_QUEUE_URL", "http://127.0.0.1:5000/123/q")
    monkeypatch.setenv("IMAGE_EVENTS_TIME_BUDGET_SECONDS", "40")
    settings = load_settings('{"topic": "img.up"}')
    assert (settings.queue_url, settings.topic, settings.time_budget_seconds) == (
        "http://127.0.0.1:5000/123/q",
        "img.up",
        40,
    )
    assert settings.topics == Topics("img.up", "images.uploaded.rejected")
    with pytest.raises(
        SettingsError, match=r"Variable 'v'.*field 'wait_seconds': Input should be less than or equal to 20"
    ):
        load_settings({"wait_seconds": 99}, source="Variable 'v'")
    with pytest.raises(SettingsError, match="field 'bogus'"):
        load_settings({"bogus": 1})
    monkeypatch.delenv("IMAGE_EVENTS_QUEUE_URL")
    with pytest.raises(SettingsError, match="field 'queue_url': Field required"):
        load_settings(None)
