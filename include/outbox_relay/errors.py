"""Every error the relay raises on purpose, grouped by what a retry can do about it.

The Airflow glue fails a task without retries for :class:`ConfigurationError` and
:class:`DiscrepancyError` (a retry would meet the same file or rescan the same window), lets
:class:`InfrastructureError` retry, and the relay fails a single row only for :class:`PoisonRowError`:
anything else raised while building a message is a bug, and crashes the run instead of burning the
row's attempts.
"""

from __future__ import annotations


class OutboxRelayError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigurationError(OutboxRelayError, ValueError):
    """A service's configuration, or an operator's argument (CLI, DAG param), cannot work; fix it, rerun."""


class MissingConfigurationError(ConfigurationError, LookupError):
    """A service, section or column the configuration names does not exist."""


class PoisonRowError(OutboxRelayError, ValueError):
    """One row cannot become a Kafka message (NULL key, no or bad topic, invalid payload or headers):
    that row fails (attempts+1, then FAILED), the rest of the batch goes on."""


class InfrastructureError(OutboxRelayError, RuntimeError):
    """The database or the broker failed or is busy; the next attempt may well succeed."""


class DiscrepancyError(OutboxRelayError, RuntimeError):
    """A check found the data wrong (e.g. reconciliation: sent but never consumed); retrying rescans
    the same rows and finds the same thing."""


class MisuseError(OutboxRelayError, TypeError):
    """A caller handed the library something it cannot work with (e.g. ``write_outbox`` given an engine
    instead of the transaction's connection); the message says what to pass instead."""
