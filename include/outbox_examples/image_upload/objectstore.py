"""S3 + SQS wiring through boto3: bucket notifications to a queue, uploads, hand-made notifications.

Against moto_server locally (``endpoint_url``), against AWS in production (no endpoint).
"""

from __future__ import annotations

import json
from typing import Any

import boto3  # type: ignore[import-untyped]


def aws_client(service: str, endpoint_url: str | None, region: str = "us-east-1", **credentials: Any) -> Any:
    return boto3.client(service, endpoint_url=endpoint_url, region_name=region, **credentials)


def local_clients(endpoint_url: str) -> tuple[Any, Any]:
    """S3 and SQS clients for moto_server (it accepts any credentials)."""
    keys = {"aws_access_key_id": "local", "aws_secret_access_key": "local"}
    return aws_client("s3", endpoint_url, **keys), aws_client("sqs", endpoint_url, **keys)


def create_bucket_with_queue(s3: Any, sqs: Any, bucket: str, queue: str, visibility_timeout: int = 30) -> str:
    """Bucket whose ObjectCreated notifications go to the queue; returns the queue URL. The store sends
    an ``s3:TestEvent`` to the queue when the configuration is set."""
    s3.create_bucket(Bucket=bucket)
    queue_url: str = sqs.create_queue(
        QueueName=queue, Attributes={"VisibilityTimeout": str(visibility_timeout)}
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    s3.put_bucket_notification_configuration(
        Bucket=bucket,
        NotificationConfiguration={
            "QueueConfigurations": [{"Id": "ImageUpload", "QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]
        },
    )
    return queue_url


def upload(s3: Any, bucket: str, key: str, body: bytes, content_type: str = "image/jpeg") -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def send_notification(sqs: Any, queue_url: str, document: dict[str, Any]) -> None:
    """A notification written by hand (multi-record, foreign source...) straight onto the queue."""
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(document))


def queue_depth(sqs: Any, queue_url: str) -> int:
    """Visible + in-flight messages: what is still waiting to be deleted."""
    attrs = sqs.get_queue_attributes(
        QueueUrl=queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def s3_record(
    bucket: str,
    encoded_key: str,
    size: int,
    event_name: str = "ObjectCreated:Put",
    sequencer: str | None = None,
    event_time: str = "2026-01-01T00:00:00.000Z",
    source: str = "aws:s3",
) -> dict[str, Any]:
    """One record in the AWS notification format (``eventVersion`` 2.1)."""
    s3_object: dict[str, Any] = {"key": encoded_key, "size": size, "eTag": "0" * 32}
    if sequencer:
        s3_object["sequencer"] = sequencer
    return {
        "eventVersion": "2.1",
        "eventSource": source,
        "awsRegion": "us-east-1",
        "eventTime": event_time,
        "eventName": event_name,
        "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket}, "object": s3_object},
    }
