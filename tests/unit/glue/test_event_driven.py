"""`schedule: "@rows"` / `confirm_schedule: "@messages"`: the relay / confirmations DAG is scheduled on
an asset watched by one trigger."""

from __future__ import annotations

from typing import Any

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay_airflow.dag_factory import confirmations_dag, relay_dag
from outbox_relay_airflow.triggers import ConfirmationsWaitingTrigger, OutboxRowsTrigger


def _config(**fields: Any) -> ServiceConfig:
    return ServiceConfig.model_validate({"service": "watched", "topic": "t", **fields})


def test_the_relay_dag_is_scheduled_on_its_watched_asset() -> None:
    dag = relay_dag(_config(schedule="@rows", watch_seconds=2))
    (asset,) = dag.timetable.asset_condition.objects  # type: ignore[attr-defined]
    assert asset.uri == "outbox://watched/"
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, OutboxRowsTrigger)
    assert watcher.trigger.serialize() == (
        "outbox_relay_airflow.triggers.OutboxRowsTrigger", {"service": "watched", "watch_seconds": 2},
    )  # fmt: skip
    assert (
        type(relay_dag(_config()).timetable).__name__ == "CronDataIntervalTimetable"
    )  # the default: every minute


def test_the_confirmations_dag_is_scheduled_on_its_watched_topic() -> None:
    config = _config(confirmation={"topic": "acks"}, confirm_schedule="@messages", watch_seconds=3)
    dag = confirmations_dag(config)
    (asset,) = dag.timetable.asset_condition.objects  # type: ignore[attr-defined]
    assert asset.uri == "outbox-confirmations://watched/"
    (watcher,) = asset.watchers
    assert isinstance(watcher.trigger, ConfirmationsWaitingTrigger)
    assert watcher.trigger.serialize() == (
        "outbox_relay_airflow.triggers.ConfirmationsWaitingTrigger", {"service": "watched", "watch_seconds": 3},
    )  # fmt: skip
    cron = confirmations_dag(_config(confirmation={"topic": "acks"}))
    assert type(cron.timetable).__name__ == "CronDataIntervalTimetable"  # the default: every minute


@pytest.mark.parametrize(
    ("fields", "words"),
    [
        ({"confirm_schedule": "@rows"}, "confirm_schedule: '@rows' is for the relay ('schedule') only"),
        (
            {"schedule": "@messages"},
            "schedule: '@messages' is for the confirmations ('confirm_schedule') only",
        ),
        ({"cleanup_schedule": "@messages"}, "cleanup_schedule: '@messages' is for the confirmations"),
        (
            {"confirm_schedule": "@messages"},
            "'@messages' watches the confirmation topic, but the service has no",
        ),
        ({"schedule": "@rows", "watch_seconds": 0}, "watch_seconds"),
        ({"schedule": "@row"}, "nor one of"),
    ],
)
def test_bad_event_driven_settings_are_named(fields: dict[str, Any], words: str) -> None:
    with pytest.raises(ValueError) as caught:
        _config(**fields)
    assert words in str(caught.value)
