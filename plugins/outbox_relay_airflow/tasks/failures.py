"""How a task fails: a bad config or a found discrepancy fails at once, without Airflow's retries."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from outbox_relay.errors import ConfigurationError, DiscrepancyError
from outbox_relay_airflow.compat import AirflowFailException

P = ParamSpec("P")
R = TypeVar("R")


class ServiceUnhealthyError(DiscrepancyError):
    """The relay run gave up on rows, or the service is outside its SLO: the run turns red (no retry)."""


class RelayLockWedgedError(DiscrepancyError):
    """Relay runs of a table found its lock held run after run: its holder may be wedged (not retried: the
    runs in a row are the finding)."""


class ReconciliationDiscrepancyError(DiscrepancyError):
    """Reconciliation found messages sent but never consumed, or consumed but never marked sent."""


def fail_without_retry(body: Callable[P, R]) -> Callable[P, R]:
    """A bad config or a found discrepancy fails the task at once: a retry would read the same file or
    rescan the same window. Broker and database trouble keep Airflow's retries."""

    @functools.wraps(body)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return body(*args, **kwargs)
        except (ConfigurationError, DiscrepancyError) as exc:
            raise AirflowFailException(
                f"{type(exc).__name__}: {exc} (not retried: a retry cannot fix this)"
            ) from exc

    return run
