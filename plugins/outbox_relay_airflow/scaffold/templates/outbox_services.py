"""Outbox relay DAGs (airflow-outbox-relay): relay, replay, backfill, confirmations, cleanup and reconcile
for every service file in services/ beside this file. All logic lives in the installed package: this file
does no I/O beyond reading the service files."""

from pathlib import Path

from outbox_relay_airflow.dag_factory import register_outbox_dags

register_outbox_dags(globals(), services_dir=Path(__file__).with_name("services"))
