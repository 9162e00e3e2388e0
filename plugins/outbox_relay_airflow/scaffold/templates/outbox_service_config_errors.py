"""Shows each invalid outbox service file in services/ (with the field at fault) as an Airflow import error
of its own; the valid services' DAGs load from outbox_services.py regardless. (The DAG processor's safe
mode reads only files that mention airflow and DAG: keep those words here.)"""

from pathlib import Path

from outbox_relay_airflow.config_errors import raise_config_errors

raise_config_errors(Path(__file__).with_name("services"))
