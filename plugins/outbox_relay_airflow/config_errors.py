"""The import error that names every invalid service config (file and field).

Kept apart from the DAG factory so the DAG file that raises it imports only the config loader: the DAG
processor re-imports it in a fresh process on every parse.
"""

from __future__ import annotations

from pathlib import Path

from outbox_relay.errors import ConfigurationError
from outbox_relay_airflow.services_folder import read_services


class InvalidServiceFilesError(ConfigurationError):
    """Raised by the config-errors DAG file so Airflow lists each broken service as an import error."""


def raise_config_errors(directory: str | Path | None = None) -> None:
    """Validate only (building DAGs here would register them twice)."""
    errors = read_services(directory).errors
    if errors:
        lines = "\n".join(f"- {e}" for e in errors)
        raise InvalidServiceFilesError(
            f"{len(errors)} outbox service config(s) are invalid; their DAGs are not loaded "
            f"(other services are unaffected):\n{lines}"
        )
