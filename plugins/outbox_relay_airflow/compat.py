"""The Airflow APIs that moved between the supported versions (3.1 to 3.3), imported from where the running
Airflow has them. Everything else the glue uses is the same in all of them.

What differs on Airflow 3.1 (docs/install.md, "Supported versions"): the Task SDK has no metrics client of
its own, so the relay's metrics go through Airflow core's ``Stats`` (the same ``[metrics]`` settings).
"""

from __future__ import annotations

from typing import Any

try:  # Airflow 3.2+
    from airflow.sdk import CronDataIntervalTimetable
except ImportError:  # Airflow 3.1
    from airflow.timetables.interval import CronDataIntervalTimetable  # type: ignore[assignment]

try:  # Airflow 3.2+
    from airflow.sdk import AssetOrTimeSchedule, CronTriggerTimetable
except ImportError:  # Airflow 3.1
    from airflow.timetables.assets import AssetOrTimeSchedule  # type: ignore[assignment,unused-ignore]
    from airflow.timetables.trigger import CronTriggerTimetable  # type: ignore[assignment,unused-ignore]

try:  # Airflow 3.2+
    from airflow.sdk.definitions.callback import AsyncCallback
except ImportError:  # Airflow 3.1
    from airflow.sdk.definitions.deadline import AsyncCallback  # type: ignore[attr-defined,unused-ignore]

try:  # Airflow 3.2+
    from airflow.sdk.exceptions import AirflowFailException
except ImportError:  # Airflow 3.1
    from airflow.exceptions import AirflowFailException  # type: ignore[attr-defined,no-redef,unused-ignore]

__all__ = [
    "AirflowFailException",
    "AssetOrTimeSchedule",
    "AsyncCallback",
    "CronDataIntervalTimetable",
    "CronTriggerTimetable",
    "initialise_stats",
    "stats",
]


def _stats() -> Any:
    try:  # Airflow 3.2+: the Task SDK's own client
        from airflow.sdk.observability import stats as sdk_stats

        return sdk_stats
    except ImportError:  # Airflow 3.1: core's, which sets itself up from [metrics] on first use
        from airflow.stats import Stats

        return Stats


stats: Any = _stats()


def initialise_stats() -> None:
    """Set up the Task SDK's metrics client from ``[metrics]`` where Airflow has not (the triggerer runs
    deadline callbacks in a process that sets up only core's copy). Core's client on 3.1 needs nothing."""
    try:
        from airflow.sdk.configuration import conf
        from airflow.sdk.observability.metrics import stats_utils
    except ImportError:
        return
    stats.initialize(
        factory=stats_utils.get_stats_factory(),
        export_legacy_names=conf.getboolean("metrics", "legacy_names_on"),
    )
