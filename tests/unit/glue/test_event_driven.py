"""`schedule: "@rows"` / `confirm_schedule: "@messages"`: the relay / confirmations DAG is scheduled on
an asset watched by one trigger."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pendulum
import pytest
from airflow.serialization.serialized_objects import DagSerialization
from airflow.timetables.base import TimeRestriction
from croniter import croniter

from outbox_relay.config import ServiceConfig
from outbox_relay.config.loader import ServiceFileError, parse_service_config
from outbox_relay_airflow.dag_factory import confirmations_dag, fallback_cron, relay_dag
from outbox_relay_airflow.triggers import ConfirmationsWaitingTrigger, OutboxRowsTrigger

HOURLY_MINUTE = zlib.crc32(b"watched") % 60  # service "watched"'s minute of the hour


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


@pytest.mark.parametrize(
    ("build", "fields"),
    [
        (relay_dag, {"schedule": "@rows"}),
        (confirmations_dag, {"confirmation": {"topic": "acks"}, "confirm_schedule": "@messages"}),
    ],
    ids=["relay", "confirmations"],
)
@pytest.mark.parametrize(
    ("fallback", "cron"),
    [("*/20 * * * *", "*/20 * * * *"), ("@daily", "0 0 * * *"), ("@hourly", f"{HOURLY_MINUTE} * * * *")],
)
def test_an_event_driven_dag_also_runs_on_its_fallback_cron(
    build: Callable[[ServiceConfig], Any], fields: dict[str, Any], fallback: str, cron: str
) -> None:
    """What the scheduler gets (the DAG serialized and read back): the watched asset or a cron run, so a
    dead triggerer delays the work by at most the cron's interval."""
    dag = build(_config(**fields, watch_fallback_schedule=fallback))
    timetable = DagSerialization.from_dict(DagSerialization.to_dict(dag)).timetable
    assert type(timetable).__name__ == "AssetOrTimeSchedule"
    assert type(timetable.timetable).__name__ == "CronTriggerTimetable"
    assert timetable.timetable._expression == cron and str(timetable.timetable._timezone) == "UTC"
    (asset,) = timetable.asset_condition.objects
    assert asset.uri.startswith("outbox")
    # the next cron run, and none of an asset's own kind: the time part schedules runs
    start = pendulum.datetime(2030, 1, 1, 0, 0, 30, tz="UTC")  # later than now: catchup=False starts here
    info = timetable.next_dagrun_info(
        last_automated_data_interval=None, restriction=TimeRestriction(start, None, catchup=False)
    )
    assert info is not None and info.run_after == croniter(cron, start).get_next(datetime)


def test_the_default_fallback_is_hourly_at_a_minute_of_the_service() -> None:
    """Services' fallback runs are spread over the hour, not all at :00; each stays at its own minute."""
    minutes = {fallback_cron(_config(service=f"s{n}", schedule="@rows")) for n in range(100)}
    assert all(m is not None and m.endswith(" * * * *") for m in minutes)
    assert len(minutes) > 40  # 100 services over 60 minutes
    assert fallback_cron(_config(schedule="@rows")) == f"{HOURLY_MINUTE} * * * *"


def test_no_fallback_leaves_the_asset_alone_and_cron_schedules_have_none() -> None:
    for off in (None, "none", "None"):
        dag = relay_dag(_config(schedule="@rows", watch_fallback_schedule=off))
        assert type(dag.timetable).__name__ == "AssetTriggeredTimetable"
    cron = relay_dag(_config(watch_fallback_schedule="*/5 * * * *"))  # the relay every minute
    assert type(cron.timetable).__name__ == "CronDataIntervalTimetable"


@pytest.mark.parametrize("bad", ["every hour", "@rows", "@continuous", "@once", "* * *", ""])
def test_a_bad_fallback_cron_is_named_with_its_file(tmp_path: Path, bad: str) -> None:
    path = tmp_path / "watched.yaml"
    path.write_text(f"topic: t\nschedule: '@rows'\nwatch_fallback_schedule: '{bad}'\n")
    with pytest.raises(ServiceFileError) as caught:
        parse_service_config(path)
    message = str(caught.value)
    assert str(path) in message and "field 'watch_fallback_schedule'" in message
    assert "neither a cron expression" in message and "`null` turns the fallback off" in message
