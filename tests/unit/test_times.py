"""Operators' ISO times: the same on every supported Python (3.10's parser does not read a trailing Z)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from outbox_relay.errors import ConfigurationError
from outbox_relay.times import parse_time


@pytest.mark.parametrize(
    ("written", "meant"),
    [
        ("2026-11-20", datetime(2026, 11, 20)),
        ("2026-11-20T06:00", datetime(2026, 11, 20, 6)),
        ("2026-11-20T06:00:00Z", datetime(2026, 11, 20, 6, tzinfo=UTC)),
        (" 2026-11-20T06:00:00z ", datetime(2026, 11, 20, 6, tzinfo=UTC)),
        ("2026-11-20T06:00:00+08:00", datetime(2026, 11, 20, 6, tzinfo=timezone(timedelta(hours=8)))),
    ],
)
def test_iso_times_with_or_without_an_offset(written: str, meant: datetime) -> None:
    assert parse_time(written) == meant


def test_a_bad_time_names_the_field_and_shows_the_form() -> None:
    with pytest.raises(
        ConfigurationError, match="since: 'yesterday' is not an ISO date/time like 2026-01-31"
    ):
        parse_time("yesterday", "since")
