"""The backfill DAG's params (and the CLI's options) -> a BackfillJob; every bad value named. And the
pace of a throttled backfill."""

from __future__ import annotations

from datetime import datetime

import pytest

from outbox_relay.backfill import Backfiller, throttle_delay
from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.models import DEFAULT_CHUNK_SECONDS, BackfillJob, HistoryEntry, Window
from outbox_relay.requests import BackfillRequest

AUDIT = HistoryEntry("me", "outage", "run")
CONFIG = ServiceConfig.model_validate({"service": "s", "topic": "t", "db_time_zone": "+08:00"})


def request_from_params(params: dict[str, object], audit: HistoryEntry, config: ServiceConfig) -> BackfillJob:
    return BackfillRequest.parse({"reason": audit.reason, **params}).job(config, audit)


WINDOW = {"since": "2026-11-20T00:00:00+00:00", "until": "2026-11-20T14:00:00"}


def test_defaults_and_times_with_an_offset_converted_to_the_db_time_zone() -> None:
    request = request_from_params(WINDOW, AUDIT, CONFIG)
    # since carries UTC and the DB keeps UTC+8; until has no offset, so it is in the DB's zone already.
    assert request.window == Window(datetime(2026, 11, 20, 8, 0), datetime(2026, 11, 20, 14, 0))
    assert request.chunk_seconds == DEFAULT_CHUNK_SECONDS and request.max_rows_per_second is None
    assert (request.republish, request.dry_run, request.history) == (False, False, AUDIT)


def test_options_are_passed_on() -> None:
    params = {**WINDOW, "republish": True, "dry_run": True, "max_rows_per_second": "250", "chunk_seconds": 5}
    request = request_from_params(params, AUDIT, CONFIG)
    options = (request.republish, request.dry_run, request.max_rows_per_second, request.chunk_seconds)
    assert options == (True, True, 250.0, 5.0)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"until": "2026-11-20T06:00"}, "backfill param 'since' is required"),
        ({"since": "2026-11-20T06:00", "until": ""}, "backfill param 'until' is required"),
        ({"since": "yesterday", "until": "2026-11-20"}, "param 'since': 'yesterday' is not an ISO date"),
        ({"since": "2026-11-20T06:00", "until": "2026-11-20T01:00"}, "since .* must be before until"),
        ({**WINDOW, "max_rows_per_second": "fast"}, "param 'max_rows_per_second': 'fast' is not a number"),
    ],
)
def test_bad_params_are_named(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        request_from_params(params, AUDIT, CONFIG)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"chunk_seconds": 0.5}, "chunk_seconds must be at least 1"),
        ({"max_rows_per_second": 0}, "max_rows_per_second must be positive"),
        ({"history": HistoryEntry("me", " ", "run")}, "a reason is required"),
    ],
)
def test_the_backfiller_refuses_a_request_it_cannot_serve(changes: dict[str, object], message: str) -> None:
    window = Window(datetime(2026, 1, 1), datetime(2026, 1, 2))
    request = BackfillJob(**{"window": window, "history": AUDIT, **changes})  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=message):
        Backfiller(CONFIG, engine=None, relay=None).check(request)  # type: ignore[arg-type]


def test_a_service_without_a_creation_time_cannot_backfill() -> None:
    config = ServiceConfig.model_validate(
        {
            "service": "s",
            "topic": "t",
            "columns": {"id": "id", "status": "status", "payload": "body"},
            "retention": None,
        }
    )
    request = BackfillJob(Window(datetime(2026, 1, 1), datetime(2026, 1, 2)), AUDIT)
    with pytest.raises(ConfigurationError, match=r"maps no columns\.created_at"):
        Backfiller(config, engine=None, relay=None).check(request)  # type: ignore[arg-type]


def test_throttle_waits_until_the_rows_sent_took_their_share_of_time() -> None:
    assert throttle_delay(1000, 2.0, 250) == pytest.approx(2.0)  # 1000 rows at 250/s take 4 s
    assert throttle_delay(1000, 5.0, 250) == 0.0  # already slower than the pace
    assert throttle_delay(1000, 0.1, None) == 0.0  # no pace asked for
