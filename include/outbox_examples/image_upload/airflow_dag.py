"""Airflow layer of the image upload scenario: a scheduled DAG draining the bucket's SQS queue into Kafka.

An Airflow 3 asset watcher (SQS ``MessageQueueTrigger``) would need the amazon provider, which this
project does not install; a DAG every minute that drains until the queue is empty or its time budget
is spent gives the same at-least-once delivery. Parsing does no I/O: settings, connections and
clients are read when the task runs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow.sdk import DAG, BaseHook, CronDataIntervalTimetable, Variable, task
from airflow.sdk.exceptions import AirflowNotFoundException

from outbox_examples.image_upload.drain import SqsDrain
from outbox_examples.image_upload.objectstore import aws_client
from outbox_examples.image_upload.settings import DrainSettings, load_settings
from outbox_relay.kafka.publisher import KafkaPublisher
from outbox_relay.kafka.topics import ensure_topics
from outbox_relay_airflow.hooks import OutboxProducerHook, admin_client

log = logging.getLogger(__name__)

DAG_ID = "image_upload_events"
VARIABLE = "image_upload_events"


def settings() -> DrainSettings:
    return load_settings(Variable.get(VARIABLE, default=None), source=f"Airflow Variable {VARIABLE!r}")


def sqs_client(config: DrainSettings) -> Any:
    """SQS client from the AWS connection (login/password = keys, extra endpoint_url/region_name); without
    that connection, boto3's default chain (role, environment) is used."""
    try:
        conn = BaseHook.get_connection(config.aws_conn_id)
    except AirflowNotFoundException:
        log.info("no connection %r: boto3 default credentials and region", config.aws_conn_id)
        return aws_client("sqs", None)
    extra = conn.extra_dejson or {}
    credentials = (
        {"aws_access_key_id": conn.login, "aws_secret_access_key": conn.password} if conn.login else {}
    )
    return aws_client("sqs", extra.get("endpoint_url"), extra.get("region_name", "us-east-1"), **credentials)


def run_ensure_topics() -> list[str]:
    config = settings()
    wanted = {config.topic: config.partitions, config.reject_topic: 1}
    return ensure_topics(admin_client(config.kafka_conn_id), wanted, config.replication_factor)


def run_drain(time_budget_seconds: float | None = None) -> dict[str, Any]:
    config = settings()
    overrides = {"message.timeout.ms": int(config.flush_timeout_seconds * 1000) - 1000, "linger.ms": 5}
    producer = OutboxProducerHook(config.kafka_conn_id, overrides).get_producer()
    drain = SqsDrain(
        sqs_client(config),
        config.queue_url,
        KafkaPublisher(producer, config.flush_timeout_seconds),
        config.topics,
    )
    stats = drain.run(time_budget_seconds or config.time_budget_seconds, config.wait_seconds)
    log.info("image events drain %s", stats.as_dict())
    return stats.as_dict()


def image_events_dag() -> DAG:
    with DAG(
        dag_id=DAG_ID,
        description="Drain the image bucket's S3 notifications (SQS) into Kafka",
        schedule=CronDataIntervalTimetable("* * * * *", timezone="UTC"),
        start_date=datetime(2024, 1, 1, tzinfo=timezone.utc),
        catchup=False,
        max_active_runs=1,
        default_args={
            "owner": "images-team",
            "retries": 3,
            "retry_delay": timedelta(seconds=30),
            "retry_exponential_backoff": True,
            "max_retry_delay": timedelta(minutes=10),
        },
        tags=["outbox", "image_upload", "sqs"],
        doc_md=(
            "### Image upload events\n\nReceives the bucket's S3 notifications from SQS, publishes one "
            "message per accepted image record (key = image id, deterministic message id) and the "
            "rejects to the reject topic, and deletes each SQS message only after Kafka acknowledged "
            f"everything made from it.\n\nSettings: Airflow Variable `{VARIABLE}` (JSON) over env "
            "`IMAGE_EVENTS_*`; AWS connection `aws_image_events` (extra `endpoint_url`, `region_name`)."
        ),
    ) as dag:

        @task(task_id="ensure_topics")
        def ensure() -> list[str]:
            return run_ensure_topics()

        @task(task_id="drain_sqs")
        def drain() -> dict[str, Any]:
            return run_drain()

        ensure() >> drain()
    return dag
