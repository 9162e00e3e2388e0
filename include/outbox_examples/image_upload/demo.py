"""Steps of ``make demo SCENARIO=image_upload`` that are not Airflow runs.

Usage: python -m outbox_examples.image_upload.demo setup|queue-url|upload N|crash|consume|report
Needs ``DEMO_DB``, ``DEMO_STATE`` and ``MOTO_ENDPOINT`` (the moto_server demo.sh started).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from sqlalchemy import create_engine

from outbox_examples import EXAMPLES_SQL_DIR
from outbox_examples.demo_support import bootstrap, db_url, print_summary, server_url
from outbox_examples.image_upload.drain import SqsDrain
from outbox_examples.image_upload.objectstore import create_bucket_with_queue, local_clients, queue_depth
from outbox_examples.image_upload.publishing import Topics
from outbox_examples.image_upload.scenario import (
    DeletesLost,
    Expected,
    Workload,
    copies_per_message,
    observe,
    order_violations,
    read_topic,
)
from outbox_examples.image_upload.services import consume_both
from outbox_relay.database import apply_ddl, make_engine, recreate_database
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.kafka.topics import ensure_topics

STATE = Path(os.environ.get("DEMO_STATE", ".run/demo-state-image_upload.json"))
VISIBILITY_SECONDS = 2  # short so the demo sees SQS redeliver quickly; production: above the flush timeout
RESULT_TOPIC = "images.uploaded.results"


def _state() -> dict[str, Any]:
    return dict(json.loads(STATE.read_text()))


def _save(**values: Any) -> None:
    STATE.write_text(json.dumps({**(_state() if STATE.exists() else {}), **values}))


def _clients() -> tuple[Any, Any]:
    return local_clients(os.environ["MOTO_ENDPOINT"])


def fresh_topics(wanted: dict[str, int]) -> None:
    """The demo's own topics, emptied: a fresh database must not meet an earlier run's image ids."""
    admin = AdminClient({"bootstrap.servers": bootstrap()})
    old = [name for name in wanted if name in admin.list_topics(timeout=10).topics]
    for future in admin.delete_topics(old, operation_timeout=10).values() if old else []:
        future.result()
    deadline = time.monotonic() + 30
    while set(old) & set(admin.list_topics(timeout=10).topics):
        if time.monotonic() > deadline:
            raise RuntimeError(f"topics {old} still listed 30s after deleting them")
        time.sleep(0.5)
    ensure_topics(admin, wanted, 1)
    probe = Consumer({"bootstrap.servers": bootstrap(), "group.id": "image-demo-probe"})
    for name, partitions in wanted.items():
        for partition in range(partitions):
            low, high = _watermarks(probe, TopicPartition(name, partition))
            if high != low:
                raise RuntimeError(
                    f"topic {name}[{partition}] is not empty after re-creation ({low}..{high})"
                )
    probe.close()


_SETTLING = {
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._UNKNOWN_PARTITION,
    KafkaError.OFFSET_NOT_AVAILABLE,
}


def _watermarks(probe: Any, partition: Any) -> tuple[int, int]:
    """A just re-created partition's leader may answer NOT_LEADER for a moment (it is still loading the
    partition the controller gave it): retry those answers, for at most 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            low, high = probe.get_watermark_offsets(partition, timeout=10)
            return int(low), int(high)
        except KafkaException as exc:
            settling = exc.args[0].code() in _SETTLING or exc.args[0].retriable()
            if not settling or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def setup() -> None:
    STATE.parent.mkdir(parents=True, exist_ok=True)
    STATE.unlink(missing_ok=True)
    engine = create_engine(recreate_database(server_url(), os.environ["DEMO_DB"]))
    apply_ddl(engine)
    apply_ddl(engine, EXAMPLES_SQL_DIR / "image_upload.sql")
    engine.dispose()
    topics = Topics.from_env()
    fresh_topics({topics.images: 3, topics.rejects: 1, RESULT_TOPIC: 1})
    s3, sqs = _clients()
    bucket = f"images-{int(time.time())}"  # per run: the topics may hold earlier runs' messages
    queue_url = create_bucket_with_queue(s3, sqs, bucket, bucket, VISIBILITY_SECONDS)
    _save(started=time.time(), bucket=bucket, queue_url=queue_url)
    print(f"bucket {bucket} -> queue {queue_url} (ObjectCreated:*), topics {topics.images}, {topics.rejects}")


def upload(parts: int) -> None:
    engine = make_engine(db_url())
    s3, sqs = _clients()
    state = _state()
    expected = Workload(engine, s3, sqs, state["bucket"], state["queue_url"]).run(parts)
    engine.dispose()
    _save(expected=expected.to_json(), notifications=queue_depth(sqs, state["queue_url"]))
    print(
        f"part service: {len(expected.linked)} parts requested an image; {expected.accepted_records} uploads "
        f"to accept (some images twice), {expected.rejected_records} to reject (empty, .txt), hand-made "
        f"documents (multi-record, foreign source); {_state()['notifications']} notifications on the queue"
    )


def crash() -> None:
    from confluent_kafka import Producer

    _s3, sqs = _clients()
    state = _state()
    producer = Producer({"bootstrap.servers": bootstrap(), "enable.idempotence": True, "acks": "all"})
    drain = SqsDrain(DeletesLost(sqs), state["queue_url"], KafkaPublisher(producer, 20), Topics.from_env())
    stats = drain.run(60)
    _save(first_pass=stats.as_dict())
    print(f"drain pass 1 (dies before deleting): {json.dumps(stats.as_dict())}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # wait for SQS to make them visible again
        attrs = sqs.get_queue_attributes(
            QueueUrl=state["queue_url"], AttributeNames=["ApproximateNumberOfMessages"]
        )
        if int(attrs["Attributes"]["ApproximateNumberOfMessages"]) >= stats.received:
            break
        time.sleep(0.5)


def consumers() -> None:
    engine = make_engine(db_url())
    topic = Topics.from_env().images
    for round_name in ("first read", "re-read from the start (new groups, same inbox)"):
        for name, stats in consume_both(
            engine, topic, bootstrap(), str(time.time_ns()), RESULT_TOPIC
        ).items():
            shown = {k: v for k, v in stats.as_dict().items() if k != "errors"}
            print(f"{name}, {round_name}: {json.dumps(shown)}")
    engine.dispose()


def report() -> int:
    state = _state()
    expected = Expected.from_json(state["expected"])
    engine = make_engine(db_url())
    seen = observe(engine, expected)
    engine.dispose()
    records = [
        r
        for r in read_topic(Topics.from_env().images, bootstrap())
        if r.body.get("bucket") == state["bucket"]
    ]
    copies = copies_per_message(records)
    _s3, sqs = _clients()
    left = queue_depth(sqs, state["queue_url"])
    violations = order_violations(records, expected)
    lost = len(seen.ready_wrong) + len(seen.linked_wrong) + max(0, expected.accepted_records - len(copies))
    for problem in (seen.ready_wrong + seen.linked_wrong + violations)[:10]:
        print(f"  ! {problem}")
    first = state["first_pass"]
    table = [
        ("notifications on the queue", state["notifications"]),
        ("image records accepted (distinct ids)", len(copies)),
        ("messages on topic (each sent twice)", sum(copies.values())),
        ("rejected to the reject topic", first["rejected"]),
        ("ignored (test event, non-S3, non-create)", first["ignored"]),
        ("images READY with their path", f"{seen.ready_ok}/{len(expected.ready)}"),
        ("images left PENDING (bad uploads)", f"{seen.pending_ok}/{len(expected.pending)}"),
        ("parts linked to their image", f"{seen.linked_ok}/{len(expected.linked)}"),
        ("per-image order violations (must be 0)", len(violations)),
        ("left in SQS (must be 0)", left),
        ("lost (must be 0)", lost),
        ("duplicate business effects (must be 0)", seen.duplicate_effects),
        ("elapsed", f"{time.time() - state['started']:.1f}s"),
    ]
    print_summary("image upload -> S3 events -> SQS -> Kafka -> image + part services", table)
    ok = lost == 0 and seen.duplicate_effects == 0 and not violations and left == 0
    return 0 if ok and seen.pending_ok == len(expected.pending) else 1


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m outbox_examples.image_upload.demo")
    parser.add_argument("step", choices=["setup", "queue-url", "upload", "crash", "consume", "report"])
    parser.add_argument("count", nargs="?", type=int, default=60)
    args = parser.parse_args()
    if args.step == "setup":
        setup()
    elif args.step == "queue-url":
        print(_state()["queue_url"])
    elif args.step == "upload":
        upload(args.count)
    elif args.step == "crash":
        crash()
    elif args.step == "consume":
        consumers()
    else:
        return report()
    return 0


if __name__ == "__main__":
    sys.exit(main())
