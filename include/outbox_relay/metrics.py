"""The relay's metrics, named in one place: what each run's statistics and each health check's figures
turn into. Sending them is the orchestrator's business (the Airflow glue sends them through Airflow's own
StatsD / OpenTelemetry settings); this module only decides names and values, so it is tested alone.

Every name is ``outbox_relay.<service>.<metric>``; backends that take tags also get ``service``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from outbox_relay.errors import OutboxRelayError

PREFIX = "outbox_relay"

Kind = Literal["counter", "gauge", "timing"]


@dataclass(frozen=True)
class Metric:
    kind: Kind
    name: str  # the part after ``outbox_relay.<service>.``
    value: float  # timings in milliseconds


# name -> (kind, what it means): the table of metrics in docs/operating.md is checked against this.
CATALOGUE: dict[str, tuple[Kind, str]] = {
    "published": ("counter", "rows the broker acknowledged and that were marked SENT (relay, backfill)"),
    "republished": ("counter", "SENT rows published again (backfill or replay republish)"),
    "retried": ("counter", "rows whose publication failed and that wait for another attempt"),
    "failed": ("counter", "rows the relay gave up on (out of attempts, or not publishable): FAILED"),
    "dead_lettered": ("counter", "rows given up on that were copied to the dead-letter topic"),
    "held_back": ("counter", "rows not sent this run because an earlier row of their key waits"),
    "recovered": (
        "counter",
        "exactly once: rows a crashed run had committed to Kafka, marked SENT at this run's start, not sent again",
    ),
    "confirmed": ("counter", "rows a consumer confirmed (CONFIRMED)"),
    "confirmation_failed": ("counter", "rows a consumer reported as failed (FAILED)"),
    "confirmation_malformed": ("counter", "confirmation messages that could not be understood"),
    "deleted": ("counter", "old terminal and FAILED rows deleted by the cleanup"),
    "relay_run_overdue": ("counter", "relay runs that missed their Airflow Deadline Alert"),
    "backlog": ("gauge", "NEW rows (counted up to 1,000,000) after the relay run"),
    "oldest_new_age_seconds": ("gauge", "age of the next row to send (0: none waits)"),
    "unconfirmed": ("gauge", "SENT rows not yet confirmed, counted up to 1,000,000 (with confirmations)"),
    "oldest_unconfirmed_age_seconds": ("gauge", "age of the oldest unconfirmed row (with confirmations)"),
    "relay_run": ("timing", "a relay run's own duration, in ms"),
    "batch_publish": ("timing", "average wait for the broker's acknowledgement of one batch, in ms"),
    "batch_publish_max": ("timing", "the slowest batch's wait for acknowledgements in the run, in ms"),
}

_RELAY_COUNTERS = ("published", "republished", "retried", "failed", "dead_lettered", "held_back", "recovered")
_CONFIRMATION_COUNTERS = {
    "confirmed": "confirmed",
    "failed": "confirmation_failed",
    "malformed": "confirmation_malformed",
}


class UnknownMetricError(OutboxRelayError, KeyError):
    """A metric name missing from ``CATALOGUE`` (the catalogue is what docs/operating.md lists)."""


def metric_name(service: str, name: str) -> str:
    if name not in CATALOGUE:
        raise UnknownMetricError(
            f"unknown metric {name!r}: add it to outbox_relay.metrics.CATALOGUE (and docs/operating.md)"
        )
    return f"{PREFIX}.{service}.{name}"


def _number(stats: Mapping[str, Any], field: str) -> float:
    value = stats.get(field)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _counters(stats: Mapping[str, Any], names: Mapping[str, str]) -> list[Metric]:
    """Counters are sent even when zero: a rate of 0 is a fact, a missing series looks like an outage."""
    return [Metric("counter", metric, _number(stats, field)) for field, metric in names.items()]


def relay_metrics(stats: Mapping[str, Any]) -> list[Metric]:
    """A relay (or backfill) run's counters and timings, from its ``RunStats.as_dict()``."""
    found = _counters(stats, {name: name for name in _RELAY_COUNTERS})
    found.append(Metric("timing", "relay_run", _number(stats, "elapsed_seconds") * 1000))
    batches = _number(stats, "batches")
    if batches:
        found.append(Metric("timing", "batch_publish", _number(stats, "publish_seconds") / batches * 1000))
        found.append(Metric("timing", "batch_publish_max", _number(stats, "slowest_publish_seconds") * 1000))
    return found


def confirmation_metrics(stats: Mapping[str, Any]) -> list[Metric]:
    """An ingestion run's counters, from its ``IngestStats.as_dict()``."""
    return _counters(stats, _CONFIRMATION_COUNTERS)


def cleanup_metrics(stats: Mapping[str, Any]) -> list[Metric]:
    """A cleanup run's deletions, from its ``RetentionStats.as_dict()``."""
    deleted = _number(stats, "deleted_terminal") + _number(stats, "deleted_failed")
    return [Metric("counter", "deleted", deleted)]


def gauges(figures: Mapping[str, int | None]) -> list[Metric]:
    """The health check's figures (``HealthCheck.figures``); a figure the table cannot give is left out."""
    return [Metric("gauge", name, value) for name, value in figures.items() if value is not None]
