"""One model per operator request: the DAG's Params, the CLI's arguments and the page's checks are read from
it, so they offer the same fields and refuse a bad value with the same words."""

from __future__ import annotations

import argparse

import pytest

from outbox_relay.errors import ConfigurationError
from outbox_relay.requests import (
    AuditRequest,
    BackfillRequest,
    CleanupRequest,
    ConfirmRequest,
    ExplainRequest,
    OperatorRequest,
    ReconcileRequest,
    RelayRequest,
    ReplayRequest,
    RequestError,
)
from outbox_relay_airflow.cli import parser
from outbox_relay_airflow.cli.arguments import request_from_args, service_arguments
from outbox_relay_airflow.outbox_page.actions import ACTIONS
from outbox_relay_airflow.params import PARAM_SCHEMA_DRAFT, request_params

REQUESTS = [RelayRequest, ConfirmRequest, CleanupRequest, ReplayRequest, BackfillRequest, ReconcileRequest,
            AuditRequest, ExplainRequest]  # fmt: skip


@pytest.mark.parametrize("request_model", REQUESTS, ids=lambda r: r.operation)
def test_the_cli_command_offers_every_cli_field_of_its_model(request_model: type[OperatorRequest]) -> None:
    sub = next(a for a in parser()._actions if isinstance(a, argparse._SubParsersAction))
    command = sub.choices[request_model.operation]
    dests = {a.dest for a in command._actions}
    assert set(request_model.cli_fields()) <= dests


@pytest.mark.parametrize("request_model", REQUESTS, ids=lambda r: r.operation)
def test_the_params_are_the_models_param_fields_read_as_draft_7(request_model: type[OperatorRequest]) -> None:
    params = request_params(request_model)
    assert set(params) == set(request_model.param_fields())
    for name, param in params.items():
        assert param.schema["$schema"] == PARAM_SCHEMA_DRAFT
        assert param.description == request_model.model_fields[name].description


def test_the_page_checks_with_the_same_models() -> None:
    assert ACTIONS["replay"].request is ReplayRequest and ACTIONS["backfill"].request is BackfillRequest
    assert set(ACTIONS["replay"].params) == set(ReplayRequest.param_fields())


def test_a_bad_value_is_refused_with_the_same_words_named_as_each_surface_names_it() -> None:
    with pytest.raises(RequestError) as from_params:
        ReplayRequest.parse({"reason": "r", "created_from": "soon", "max_rows": 0})
    add = argparse.ArgumentParser()
    service_arguments(ReplayRequest)(add)
    args = add.parse_args(["svc", "--reason", "r", "--since", "soon", "--max-rows", "0"])
    with pytest.raises(RequestError) as from_cli:
        request_from_args(ReplayRequest, args)
    assert from_params.value.problems == [
        "replay param 'created_from': 'soon' is not an ISO date/time like 2026-01-31 or 2026-01-31T06:00:00",
        "replay param 'max_rows' must be at least 1 (not 0)",
    ]
    assert from_cli.value.problems == [
        "replay --since: 'soon' is not an ISO date/time like 2026-01-31 or 2026-01-31T06:00:00",
        "replay --max-rows must be at least 1 (not 0)",
    ]
    assert isinstance(from_cli.value, ConfigurationError)  # the CLI's exit status 2, the task's no-retry


def test_choice_flags_and_repeated_flags_fill_one_field() -> None:
    add = argparse.ArgumentParser()
    service_arguments(ReplayRequest)(add)
    args = add.parse_args(
        ["svc", "--reason", "r", "--unconfirmed", "--failed", "--row-id", "1", "--row-id", "2"]
    )
    request = request_from_args(ReplayRequest, args)
    assert request.statuses == ("unconfirmed", "failed") and request.row_ids == ("1", "2")
    assert request_from_args(ReplayRequest, add.parse_args(["svc", "--reason", "r"])).statuses == ("failed",)


def test_cross_field_checks_name_the_fields_as_each_surface_does() -> None:
    with pytest.raises(
        RequestError, match="reconcile params: include_failed only makes sense with redeliver"
    ):
        ReconcileRequest.parse({"include_failed": True})
    with pytest.raises(RequestError, match="reconcile: --include-failed only makes sense with --redeliver"):
        ReconcileRequest.parse({"include_failed": True}, "cli")
