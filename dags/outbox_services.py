"""Outbox relay DAGs for every service registered in dags/services/*.yaml: relay, replay, and when
configured backfill, confirmations, cleanup and reconcile.

The one line any Airflow DAG folder needs (``outbox-relay init`` writes it); all logic lives in the
installed package.
"""

from outbox_relay_airflow.dag_factory import register_outbox_dags

register_outbox_dags(globals())
