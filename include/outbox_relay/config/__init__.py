"""What a registered service is: pydantic models (the YAML schema) and the loader of the services folder."""

from outbox_relay.config.fields import StatusValue
from outbox_relay.config.lifecycle import (
    Confirmation,
    ConsumerColumns,
    ConsumerStatuses,
    Reconciliation,
    Retention,
)
from outbox_relay.config.service import ServiceConfig
from outbox_relay.config.settings import Connections, Kafka, Retry
from outbox_relay.config.table import STANDARD_COLUMNS, Columns, Payload, RowFilter, Statuses

__all__ = [
    "STANDARD_COLUMNS",
    "Columns",
    "Confirmation",
    "Connections",
    "ConsumerColumns",
    "ConsumerStatuses",
    "Kafka",
    "Payload",
    "Reconciliation",
    "Retention",
    "Retry",
    "RowFilter",
    "ServiceConfig",
    "StatusValue",
    "Statuses",
]
