"""Surfaces invalid service configs as an Airflow import error naming each file and field.

The valid services' DAGs are loaded by outbox_services.py, so a bad file breaks
only its own service. (The words 'airflow' and 'DAG' keep safe-mode parsing on.)
"""

from outbox_relay_airflow.config_errors import raise_config_errors

raise_config_errors()
