"""The relay core: MySQL outbox tables -> Kafka -> confirmations -> cleanup, with no Airflow import.

Subpackages: ``config`` (what a service is), ``store`` (every SQL statement), ``kafka`` (producing,
consuming, topics), ``relay`` (the relay loop); beside them the other jobs of a service's DAGs
(``confirmations``, ``retention``, ``reconciliation``, ``checks``) and ``errors``.
"""
