"""Which errors a task retries: infrastructure yes; configuration and discrepancies fail at once."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from outbox_relay.errors import (
    ConfigurationError,
    DiscrepancyError,
    InfrastructureError,
    MissingConfigurationError,
    OutboxRelayError,
    PoisonRowError,
)
from outbox_relay_airflow.tasks.failures import fail_without_retry


def _raising(error: Exception) -> None:
    raise error


@pytest.mark.parametrize(
    "error",
    [
        ConfigurationError("bad field"),
        MissingConfigurationError("no such service"),
        DiscrepancyError("3 lost"),
    ],
)
def test_errors_a_retry_cannot_fix_fail_the_task_without_retries(error: Exception) -> None:
    with pytest.raises(AirflowFailException, match=str(error)) as failed:
        fail_without_retry(_raising)(error)
    assert failed.value.__cause__ is error


@pytest.mark.parametrize("error", [InfrastructureError("broker down"), RuntimeError("a bug")])
def test_other_errors_keep_airflows_retries(error: Exception) -> None:
    with pytest.raises(type(error)):
        fail_without_retry(_raising)(error)


def test_every_declared_error_shares_one_base() -> None:
    from outbox_relay.config.identifiers import InvalidIdentifierError
    from outbox_relay.config.loader import ServiceFileError
    from outbox_relay.confirmations import MalformedConfirmationError
    from outbox_relay.kafka.publisher import BrokerUnavailableError
    from outbox_relay.relay.engine import RelayDatabaseError, RelayLockBusyError
    from outbox_relay_airflow.config_errors import InvalidServiceFilesError
    from outbox_relay_airflow.tasks.failures import ReconciliationDiscrepancyError

    declared = [
        ServiceFileError, MalformedConfirmationError, InvalidIdentifierError, BrokerUnavailableError,
        RelayDatabaseError, RelayLockBusyError, InvalidServiceFilesError, ReconciliationDiscrepancyError,
        PoisonRowError,
    ]  # fmt: skip
    assert all(issubclass(cls, OutboxRelayError) for cls in declared)
    assert issubclass(BrokerUnavailableError, InfrastructureError)
    assert issubclass(ServiceFileError, ConfigurationError) and issubclass(
        InvalidServiceFilesError, ConfigurationError
    )
