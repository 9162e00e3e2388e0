"""What Airflow's providers manager reads about this package (the ``apache_airflow_provider`` entry point):
the Providers page lists it, and the outbox database gets a connection type with its own form and a
working "Test" button.

Plain data, no imports beyond the standard library: every Airflow component calls it at start.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any

PACKAGE_NAME = "airflow-outbox-relay"
DATABASE_CONNECTION_TYPE = "outbox"
DATABASE_HOOK = "outbox_relay_airflow.hooks.OutboxDatabaseHook"

# The outbox database connection's extras, as the form shows them: (name, label, JSON type, default,
# description). The hook reads the same names (``OutboxDatabaseHook``); any TLS field turns TLS on.
DATABASE_EXTRA_FIELDS: tuple[tuple[str, str, str, Any, str], ...] = (
    ("charset", "Charset", "string", "utf8mb4", "Client character set."),
    ("ssl_ca", "TLS CA file", "string", None, "Path of the CA bundle that signed the server's certificate."),
    ("ssl_cert", "TLS client certificate", "string", None, "Path of the client certificate (mutual TLS)."),
    ("ssl_key", "TLS client key", "string", None, "Path of the client certificate's key (mutual TLS)."),
    ("ssl_capath", "TLS CA folder", "string", None, "Folder of CA certificates."),
    ("ssl_cipher", "TLS ciphers", "string", None, "Allowed cipher list."),
    ("ssl_check_hostname", "Check the server's host name", "boolean", None, "Default: on with TLS."),
    ("ssl_verify_cert", "Verify the server's certificate", "boolean", None, "Default: on with a CA."),
)

DATABASE_FIELD_BEHAVIOUR: dict[str, Any] = {
    "hidden-fields": ["extra"],
    "relabeling": {"schema": "Database"},
    "placeholders": {"host": "mysql.example.internal", "port": "3306", "schema": "orders"},
}


def _package_version() -> str:
    try:
        return version(PACKAGE_NAME)
    except PackageNotFoundError:  # imported from a source tree that was never installed
        return "0+unknown"


def database_conn_fields() -> dict[str, Any]:
    """The form's extra fields in Airflow's declarative form (``conn-fields``, read by Airflow 3.2+)."""
    fields: dict[str, Any] = {}
    for name, label, kind, default, description in DATABASE_EXTRA_FIELDS:
        schema: dict[str, Any] = {"type": [kind, "null"]}
        if default is not None:
            schema["default"] = default
        fields[name] = {"label": label, "description": description, "schema": schema}
    return fields


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "Outbox relay",
        "description": "Transactional outbox relay: MySQL outbox tables to Kafka, consumers' confirmations "
        "back, old rows cleaned up; DAGs generated per service, the Outbox page, replay, backfill and audit.",
        "versions": [_package_version()],
        "connection-types": [
            {
                "connection-type": DATABASE_CONNECTION_TYPE,
                "hook-class-name": DATABASE_HOOK,
                "hook-name": "Outbox database (MySQL / MariaDB)",
                "conn-fields": database_conn_fields(),
                "ui-field-behaviour": DATABASE_FIELD_BEHAVIOUR,
            }
        ],
        "integrations": [{"integration-name": "Outbox relay", "tags": ["service"]}],
        "hooks": [
            {
                "integration-name": "Outbox relay",
                "python-modules": ["outbox_relay_airflow.hooks"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Outbox relay",
                "python-modules": ["outbox_relay_airflow.triggers"],
            }
        ],
    }
