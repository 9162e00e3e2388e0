"""The generated DAGs' task bodies, a module per DAG. Each reads its service's file and its run's params,
calls ``outbox_relay_airflow.operations`` and turns the outcome into XCom, metrics and asset events. A bad
config or a found discrepancy fails the task at once (``failures.fail_without_retry``)."""
