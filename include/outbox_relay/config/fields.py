"""Value types and validators shared by every config section: status values, topic names, schedules."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict

StatusValue = str | int

# Kafka topic names: legal characters and length, as the broker enforces them.
_TOPIC = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")
_PRESETS = {"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually"}


def check_topic(name: str) -> str:
    if not _TOPIC.match(name) or name in {".", ".."}:
        raise ValueError(f"{name!r} is not a valid Kafka topic name: 1-249 characters from [A-Za-z0-9._-]")
    return name


EVENT_DRIVEN = "@rows"  # the relay runs when the triggerer sees eligible rows (``watch_seconds``)
CONFIRMATIONS_WAITING = "@messages"  # the ingest runs when the triggerer sees confirmations waiting


# Each event-driven schedule and the one field it belongs to (and how an error names that field).
_EVENT_SCHEDULES = {
    EVENT_DRIVEN: ("schedule", "the relay ('schedule')"),
    CONFIRMATIONS_WAITING: ("confirm_schedule", "the confirmations ('confirm_schedule')"),
}


def check_event_schedule(field: str, value: str | None) -> None:
    """An event-driven schedule given to a DAG it cannot drive is an error naming the field."""
    owner, owner_text = _EVENT_SCHEDULES.get(value or "", (field, ""))
    if owner != field:
        raise ValueError(f"{field}: {value!r} is for {owner_text} only; use a cron expression")


_CRON_PRESETS = _PRESETS - {"@once", "@continuous"}


def check_cron(value: str | None) -> str | None:
    """A clock for a fallback: a cron expression (5 or 6 fields) or a periodic preset, nothing else."""
    if value is None or value in _CRON_PRESETS:
        return value
    fields = value.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            f"{value!r} is neither a cron expression (5 fields) nor one of {sorted(_CRON_PRESETS)}; "
            "`null` turns the fallback off"
        )
    return value


def check_schedule(value: str | None) -> str | None:
    if value is None or value in _PRESETS or value in (EVENT_DRIVEN, CONFIRMATIONS_WAITING):
        return value
    fields = value.split()
    if len(fields) not in (5, 6) or not all(_CRON_FIELD.match(f) for f in fields):
        raise ValueError(
            f"{value!r} is neither a cron expression (5 fields) nor one of {sorted(_PRESETS)}, "
            f"{EVENT_DRIVEN!r} or {CONFIRMATIONS_WAITING!r}"
        )
    return value


class Strict(BaseModel):
    """Unknown keys are errors (a typo must not silently fall back to a default); models are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)
