"""The replay request: the DAG's params (and the CLI's options, the page's form) -> a ReplayJob; every bad
value named."""

from __future__ import annotations

from datetime import datetime

import pytest

from outbox_relay.config import ServiceConfig
from outbox_relay.errors import ConfigurationError
from outbox_relay.models import FAILED, UNCONFIRMED, HistoryEntry
from outbox_relay.replay import ReplayJob
from outbox_relay.requests import DEFAULT_MAX_ROWS, ReplayRequest

AUDIT = HistoryEntry("me", "why", "run")


def request_from_params(params: dict[str, object], audit: HistoryEntry, config: ServiceConfig) -> ReplayJob:
    return ReplayRequest.parse({"reason": audit.reason, **params}).job(config, audit)


CONFIG = ServiceConfig.model_validate({"service": "s", "topic": "t", "db_time_zone": "+08:00"})


def test_lists_may_be_lists_or_separated_strings_and_defaults_apply() -> None:
    request = request_from_params({"row_ids": "1, 2\n3", "message_ids": ["m1", " m2 "]}, AUDIT, CONFIG)
    assert request.wanted.row_ids == ("1", "2", "3") and request.wanted.message_ids == ("m1", "m2")
    assert request.wanted.kinds == frozenset({FAILED}) and request.max_rows == DEFAULT_MAX_ROWS
    assert request.dry_run is False and request.history == AUDIT


def test_times_with_an_offset_are_converted_to_the_db_time_zone() -> None:
    request = request_from_params(
        {"statuses": [FAILED, UNCONFIRMED], "created_from": "2026-11-20T00:00:00+00:00"}, AUDIT, CONFIG
    )
    assert request.wanted.created_from == datetime(2026, 11, 20, 8, 0)  # the DB keeps UTC+8
    assert request.wanted.kinds == frozenset({FAILED, UNCONFIRMED})


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"statuses": ["lost"]}, "param 'statuses': ['lost'] not among"),
        ({"created_until": "soon"}, "param 'created_until': 'soon' is not an ISO date"),
        (
            {"created_from": "2026-02-01", "created_until": "2026-01-01"},
            "params: created_from .* must be before created_until",
        ),
        ({"max_rows": "many"}, "param 'max_rows': 'many' is not a number"),
    ],
)
def test_bad_params_are_named(params: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        request_from_params(params, AUDIT, CONFIG)
