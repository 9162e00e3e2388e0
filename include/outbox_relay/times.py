"""Times an operator types (CLI arguments, DAG params, page forms) and the naive DB time the tables store."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import overload

from outbox_relay.errors import ConfigurationError


def parse_time(value: str, what: str = "") -> datetime:
    """An ISO date/time given by an operator, with an error naming ``what`` (the argument or param). A
    trailing ``Z`` means UTC (Python 3.10's parser does not read it)."""
    text = value.strip()
    try:
        return datetime.fromisoformat(text[:-1] + "+00:00" if text[-1:] in {"Z", "z"} else text)
    except ValueError:
        where = f"{what}: " if what else ""
        raise ConfigurationError(
            f"{where}{value!r} is not an ISO date/time like 2026-01-31 or 2026-01-31T06:00:00"
        ) from None


@overload
def to_db_time(moment: datetime, db_zone: tzinfo) -> datetime: ...
@overload
def to_db_time(moment: None, db_zone: tzinfo) -> None: ...
def to_db_time(moment: datetime | None, db_zone: tzinfo) -> datetime | None:
    """The naive time in the service's DB time zone that the tables store; a naive ``moment`` is taken to be
    in it already (operators type DB times). None (a bound not given) stays None."""
    if moment is None or moment.tzinfo is None:
        return moment
    return moment.astimezone(db_zone).replace(tzinfo=None)
