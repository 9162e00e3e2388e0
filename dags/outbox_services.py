"""Outbox relay DAGs for every service registered in dags/services/*.yaml: relay, and when configured
confirmations, cleanup and reconcile.

Thin on purpose: all logic lives in include/outbox_relay (core) and plugins/outbox_relay_airflow.
"""

from outbox_relay_airflow.dag_factory import build_all

_dags, _errors = build_all()
globals().update(_dags)
