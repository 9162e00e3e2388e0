"""`schedule: "@rows"` / `confirm_schedule: "@messages"`: the relay / confirmations DAG is scheduled on
an asset watched by one trigger."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay_airflow.dag_factory import confirmations_dag, relay_dag
from outbox_relay_airflow.triggers import ConfirmationsWaitingTrigger, OutboxRowsTrigger


def _config(**fields: Any) -> ServiceConfig:
    return ServiceConfig.model_validate({"service": "watched", "topic": "t", **fields})


@pytest.mark.parametrize(
    ("build", "fields", "uri", "trigger"),
    [
        (relay_dag, {"schedule": "@rows"}, "outbox://watched/", OutboxRowsTrigger),
        (
            confirmations_dag,
            {"confirmation": {"topic": "acks"}, "confirm_schedule": "@messages"},
            "outbox-confirmations://watched/",
            ConfirmationsWaitingTrigger,
        ),
    ],
    ids=["relay", "confirmations"],
)
def test_an_event_driven_dag_is_scheduled_on_its_watched_asset(
    build: Callable[[ServiceConfig], Any], fields: dict[str, Any], uri: str, trigger: type
) -> None:
    dag = build(_config(**fields, watch_seconds=2))
    (asset,) = dag.timetable.asset_condition.objects
    assert asset.uri == uri
    (watcher,) = asset.watchers
    assert type(watcher.trigger) is trigger
    assert watcher.trigger.serialize() == (
        f"outbox_relay_airflow.triggers.{trigger.__name__}",
        {"service": "watched", "watch_seconds": 2, "services_dir": None},
    )
    cron = build(_config(confirmation={"topic": "acks"}))
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
