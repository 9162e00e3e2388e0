"""One model per operator request; the DAG's Params, the CLI and the Outbox page are generated from them."""

from outbox_relay.models import DEFAULT_MAX_ROWS
from outbox_relay.requests.base import OperatorRequest, Option, RequestError, Surface
from outbox_relay.requests.operations import (
    AuditRequest,
    BackfillRequest,
    CleanupRequest,
    ConfirmRequest,
    ExplainRequest,
    ReconcileRequest,
    RelayRequest,
    ReplayRequest,
)

__all__ = [
    "DEFAULT_MAX_ROWS",
    "AuditRequest",
    "BackfillRequest",
    "CleanupRequest",
    "ConfirmRequest",
    "ExplainRequest",
    "OperatorRequest",
    "Option",
    "ReconcileRequest",
    "RelayRequest",
    "ReplayRequest",
    "RequestError",
    "Surface",
]
