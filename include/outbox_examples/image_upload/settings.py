"""Settings of the SQS drain: environment ``IMAGE_EVENTS_*``, overlaid by a JSON document (in Airflow
the Variable ``image_upload_events``). Bad values raise an error naming the field and where it came from."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from outbox_examples.image_upload.publishing import DEFAULT_REJECT_TOPIC, DEFAULT_TOPIC, Topics

ENV_PREFIX = "IMAGE_EVENTS_"


class DrainSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    queue_url: str = Field(min_length=1, description="SQS queue receiving the bucket's notifications")
    topic: str = Field(DEFAULT_TOPIC, min_length=1)
    reject_topic: str = Field(DEFAULT_REJECT_TOPIC, min_length=1)
    partitions: int = Field(3, ge=1)
    replication_factor: int = Field(1, ge=1)
    kafka_conn_id: str = "kafka_default"
    aws_conn_id: str = "aws_image_events"
    time_budget_seconds: float = Field(50, gt=0)
    wait_seconds: int = Field(1, ge=0, le=20)
    flush_timeout_seconds: float = Field(20, gt=0)

    @property
    def topics(self) -> Topics:
        return Topics(self.topic, self.reject_topic)


class SettingsError(ValueError):
    """Settings that cannot be used; names each bad field and the source of the settings."""


def load_settings(overlay: Mapping[str, Any] | str | None = None, source: str = "Variable") -> DrainSettings:
    """Environment first (``IMAGE_EVENTS_QUEUE_URL`` ...), then ``overlay`` (JSON text or mapping)."""
    values: dict[str, Any] = {}
    for name in DrainSettings.model_fields:
        env = os.environ.get(ENV_PREFIX + name.upper())
        if env is not None:
            values[name] = env
    if isinstance(overlay, str):
        try:
            overlay = json.loads(overlay)
        except ValueError as exc:
            raise SettingsError(f"{source}: not JSON: {exc}") from None
    if overlay is not None and not isinstance(overlay, Mapping):
        raise SettingsError(f"{source}: must be a JSON object, got {type(overlay).__name__}")
    values.update(overlay or {})
    try:
        return DrainSettings.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"field {'.'.join(map(str, e['loc']))!r}: {e['msg']}" for e in exc.errors())
        raise SettingsError(
            f"image upload drain settings (env {ENV_PREFIX}* + {source}): {problems}"
        ) from None
