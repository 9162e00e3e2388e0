"""The generated DAGs' Params, read from the operator request models (``outbox_relay.requests``)."""

from __future__ import annotations

from typing import Any

from airflow.sdk import Param

from outbox_relay.requests import OperatorRequest

# Airflow checks a Param's schema against its JSON Schema meta-schema each time it resolves the Param, and a
# DAG's serialization resolves each one about four times, on every re-parse. Against draft 2020-12 (the
# default) that check costs ~0.5 ms; against draft 7 less than half. Every keyword used here means the same
# in both drafts.
PARAM_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"


def request_params(
    request: type[OperatorRequest], overrides: dict[str, dict[str, Any]] | None = None
) -> dict[str, Param]:
    """The trigger form of one operation: a Param per field the model offers to DAG runs. ``overrides``:
    schema keywords a service narrows (the replay statuses it can replay)."""
    params = {}
    for name, (default, description, schema) in request.param_schemas().items():
        merged = {**schema, **(overrides or {}).get(name, {}), "$schema": PARAM_SCHEMA_DRAFT}
        params[name] = Param(default, description=description, schema=merged)
    return params
