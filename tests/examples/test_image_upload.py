"""Scenario image_upload end to end: real S3 + SQS (moto_server over HTTP), real broker, real MariaDB.

Uploads through boto3 make the store notify the queue by itself (with its s3:TestEvent and
URL-encoded keys); hand-made documents add a multi-record notification and a foreign event. The
drain publishes, both consumers apply, and the tables are checked: nothing lost, one effect per image
although every Kafka message is on the topic twice and read twice more, per-image order kept.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from confluent_kafka import Producer
from moto.server import ThreadedMotoServer
from sqlalchemy import Engine, text

from outbox_examples import EXAMPLES_SQL_DIR
from outbox_examples.image_upload import lambda_handler as lambda_module
from outbox_examples.image_upload.drain import DrainIncompleteError, SqsDrain
from outbox_examples.image_upload.objectstore import (
    create_bucket_with_queue,
    local_clients,
    queue_depth,
    s3_record,
    send_notification,
)
from outbox_examples.image_upload.publishing import Topics
from outbox_examples.image_upload.scenario import (
    DeletesLost,
    Workload,
    copies_per_message,
    observe,
    order_violations,
    read_topic,
)
from outbox_examples.image_upload.services import consume_both
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.store.ddl import apply_ddl
from tests.conftest import BOOTSTRAP, ROOT
from tests.examples.demo_runner import run_demo
from tests.integration.kafka_tools import create_topics

pytestmark = pytest.mark.integration

VISIBILITY_SECONDS = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@dataclass
class Store:
    s3: Any
    sqs: Any
    bucket: str
    queue_url: str


@pytest.fixture
def store(moto_endpoint: str) -> Store:
    s3, sqs = local_clients(moto_endpoint)
    name = f"images-{uuid.uuid4().hex[:10]}"
    return Store(s3, sqs, name, create_bucket_with_queue(s3, sqs, name, name, VISIBILITY_SECONDS))


@pytest.fixture
def topics(topic_name: Callable[[str], str]) -> Topics:
    chosen = Topics(topic_name("images"), topic_name("images-rejected"))
    create_topics(chosen.images, partitions=3)
    create_topics(chosen.rejects, f"{chosen.images}.results", partitions=1)  # results: the consumers' answers
    return chosen


@pytest.fixture
def scenario_db(db_engine: Engine) -> Engine:
    apply_ddl(db_engine, EXAMPLES_SQL_DIR / "image_upload.sql")
    return db_engine


def _publisher(bootstrap: str = BOOTSTRAP, timeout: float = 15) -> KafkaPublisher:
    settings = {"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 5}
    return KafkaPublisher(Producer({**settings, "message.timeout.ms": int(timeout * 1000) - 1000}), timeout)


def _wait_visible(store: Store, count: int) -> None:
    deadline = time.monotonic() + VISIBILITY_SECONDS + 20
    while time.monotonic() < deadline:
        attrs = store.sqs.get_queue_attributes(
            QueueUrl=store.queue_url, AttributeNames=["ApproximateNumberOfMessages"]
        )["Attributes"]
        if int(attrs["ApproximateNumberOfMessages"]) >= count:
            return
        time.sleep(0.5)
    raise AssertionError(f"{count} notifications did not become visible again")


def test_uploads_reach_both_services_once_with_every_message_delivered_twice(
    scenario_db: Engine, store: Store, topics: Topics
) -> None:
    expected = Workload(scenario_db, store.s3, store.sqs, store.bucket, store.queue_url).run(parts=6)
    notifications = queue_depth(store.sqs, store.queue_url)
    # TestEvent + one per upload (6 parts, 2 re-uploaded, empty, .txt, gallery) + 2 hand-made documents
    assert notifications == 1 + 8 + 3 + 2

    # Pass 1 publishes everything, then "crashes" before deleting: nothing leaves the queue.
    publisher = _publisher()
    first = SqsDrain(DeletesLost(store.sqs), store.queue_url, publisher, topics).run(30)
    assert (first.received, first.deleted, first.delete_failures) == (notifications, 0, notifications)
    assert (first.published, first.rejected) == (expected.accepted_records, expected.rejected_records)
    assert first.ignored == expected.ignored_records and first.nothing_to_publish == 2
    assert queue_depth(store.sqs, store.queue_url) == notifications

    # Pass 2: SQS redelivers every notification; published again with the same ids, then deleted.
    _wait_visible(store, notifications)
    second = SqsDrain(store.sqs, store.queue_url, publisher, topics).run(30)
    assert (second.received, second.deleted, second.redelivered) == (
        notifications,
        notifications,
        notifications,
    )
    assert second.published == expected.accepted_records
    assert queue_depth(store.sqs, store.queue_url) == 0

    on_topic = read_topic(topics.images, BOOTSTRAP)
    copies = copies_per_message(on_topic)
    assert len(copies) == expected.accepted_records and set(copies.values()) == {2}
    assert order_violations(on_topic, expected) == []
    rejects = read_topic(topics.rejects, BOOTSTRAP)
    assert len(copies_per_message(rejects)) == expected.rejected_records
    reasons = sorted(r.body["reason"] for r in rejects[: expected.rejected_records])
    assert any("is empty" in r for r in reasons) and sum("not an image" in r for r in reasons) == 2

    # Both consumers read everything (each message twice), then again from the start in a new group.
    results = f"{topics.images}.results"
    for name, once in consume_both(
        scenario_db, topics.images, BOOTSTRAP, uuid.uuid4().hex[:6], results
    ).items():
        assert (name, once.received, once.failed) == (name, 2 * expected.accepted_records, 0), once.errors
        assert once.processed == once.duplicates == expected.accepted_records
    for name, again in consume_both(
        scenario_db, topics.images, BOOTSTRAP, uuid.uuid4().hex[:6], results
    ).items():
        assert (name, again.processed, again.duplicates) == (name, 0, 2 * expected.accepted_records)

    seen = observe(scenario_db, expected)
    assert seen.ready_wrong == [] and seen.ready_ok == len(expected.ready) == 8
    assert seen.pending_ok == 2  # the empty object and the .txt upload leave their images PENDING
    assert seen.linked_wrong == [] and seen.linked_ok == len(expected.linked) == 7
    assert seen.duplicate_effects == 0
    with scenario_db.connect() as conn:
        gallery = conn.execute(text("SELECT path FROM image WHERE service = 'galería de fotos'")).scalar_one()
        changes = conn.execute(text("SELECT COUNT(*) FROM image_change_log")).scalar_one()
        links = conn.execute(text("SELECT COUNT(*) FROM part_image_link_log")).scalar_one()
    assert gallery.startswith("galería de fotos/") and gallery.endswith(".png")
    assert changes == expected.accepted_records  # every accepted upload applied once (re-uploads included)
    assert links == 7  # one link per part; the gallery image is not the part service's


def test_a_broker_failure_leaves_the_notification_in_the_queue_until_kafka_acknowledges(
    scenario_db: Engine, store: Store, topics: Topics
) -> None:
    store.sqs.purge_queue(QueueUrl=store.queue_url)  # drop the s3:TestEvent
    send_notification(store.sqs, store.queue_url, {"Records": [s3_record(store.bucket, "part%2F9-1.jpg", 5)]})
    dead = _publisher(f"127.0.0.1:{_free_port()}", timeout=3)
    with pytest.raises(DrainIncompleteError) as failure:
        SqsDrain(store.sqs, store.queue_url, dead, topics).run(20)
    assert (failure.value.stats.left_for_redelivery, failure.value.stats.deleted) == (1, 0)
    assert queue_depth(store.sqs, store.queue_url) == 1

    _wait_visible(store, 1)
    retried = SqsDrain(store.sqs, store.queue_url, _publisher(), topics).run(20)
    assert (retried.published, retried.deleted, retried.redelivered) == (1, 1, 1)
    assert [r.body["key"] for r in read_topic(topics.images, BOOTSTRAP)] == ["part/9-1.jpg"]

    # A body that is no notification at all is not dropped unseen: it goes to the reject topic, then is deleted.
    store.sqs.send_message(QueueUrl=store.queue_url, MessageBody="<Error>not a notification</Error>")
    poison = SqsDrain(store.sqs, store.queue_url, _publisher(), topics).run(20)
    assert (poison.rejected, poison.deleted) == (1, 1) and queue_depth(store.sqs, store.queue_url) == 0
    [reject] = read_topic(topics.rejects, BOOTSTRAP)
    assert reject.body["record"] == "<Error>not a notification</Error>"
    assert reject.body["reason"].startswith("notification is not JSON")


def test_lambda_handler_reuses_one_producer_and_acknowledges_before_returning(
    topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IMAGE_EVENTS_TOPIC", topics.images)
    monkeypatch.setenv("IMAGE_EVENTS_REJECT_TOPIC", topics.rejects)
    monkeypatch.setenv("OUTBOX_KAFKA_BOOTSTRAP", BOOTSTRAP)
    monkeypatch.setattr(lambda_module, "_publisher", None)
    event = {
        "Records": [
            s3_record("b", "part%2F3738-1680862599359.jpg", 41762, sequencer="005E89E354A986B50D"),
            s3_record("b", "part%2F3739-1680862599360.jpg", 0, sequencer="005E89E354A986B50E"),
            s3_record("b", "part%2F3740-1680862599361.png", 9, sequencer="005E89E354A986B50F"),
        ]
    }
    answer = lambda_module.lambda_handler(event, None)
    producer = lambda_module._publisher
    assert json.loads(answer["body"]) == {"published": 2, "rejected": 1, "ignored": 0}
    lambda_module.lambda_handler({"Service": "Amazon S3", "Event": "s3:TestEvent"}, None)
    lambda_module.lambda_handler(event, None)  # S3 retried the invocation: same ids again
    assert lambda_module._publisher is producer
    landed = read_topic(topics.images, BOOTSTRAP)
    assert [(r.key, r.body["image_id"]) for r in landed if r.key == "3738"] == [("3738", 3738)] * 2
    assert set(copies_per_message(landed).values()) == {2} and len(copies_per_message(landed)) == 2


def test_lambda_invocation_fails_when_kafka_does_not_acknowledge(
    topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lambda_module, "_publisher", _publisher(f"127.0.0.1:{_free_port()}", timeout=3))
    monkeypatch.setenv("IMAGE_EVENTS_TOPIC", topics.images)
    with pytest.raises(lambda_module.DeliveryIncompleteError, match="1 of 1 messages not acknowledged"):
        lambda_module.lambda_handler({"Records": [s3_record("b", "part/1-2.jpg", 3)]}, None)


@pytest.mark.airflow
@pytest.mark.slow
def test_demo_runs_the_airflow_drain_dag_and_reports_nothing_lost_nothing_doubled() -> None:
    """`make demo SCENARIO=image_upload` small: moto_server process, `airflow dags test image_upload_events`."""
    demo = run_demo("image_upload", timeout=400, DEMO_PARTS="6")
    figures = demo.figures
    assert figures["image records accepted (distinct ids)"] == "11"
    assert figures["messages on topic (each sent twice)"] == "22"
    assert (figures["rejected to the reject topic"], figures["ignored (test event, non-S3, non-create)"]) == (
        "3",
        "3",
    )
    assert figures["images READY with their path"] == "8/8"
    assert figures["images left PENDING (bad uploads)"] == "2/2"
    assert figures["parts linked to their image"] == "7/7"
    for must_be_zero in ("lost", "duplicate business effects", "per-image order violations", "left in SQS"):
        assert figures[f"{must_be_zero} (must be 0)"] == "0", must_be_zero
    assert "'redelivered': 14, 'delete_failures': 0" in demo.stdout  # the DAG drained the redelivered ones


@pytest.mark.airflow
def test_the_drain_dag_parses_without_io_and_runs_every_minute_one_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.delenv("IMAGE_EVENTS_QUEUE_URL", raising=False)  # settings read at parse time would fail
    bag = DagBag(
        dag_folder=str(
            ROOT / "include" / "outbox_examples" / "image_upload" / "dags" / "image_upload_events.py"
        )
    )
    assert bag.import_errors == {}
    dag = bag.dags["image_upload_events"]
    assert [t.task_id for t in dag.topological_sort()] == ["ensure_topics", "drain_sqs"]
    assert dag.max_active_runs == 1 and not dag.catchup and "image_upload" in dag.tags
    assert dag.timetable.expression == "* * * * *"
