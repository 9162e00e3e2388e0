"""Airflow-facing glue for the outbox relay: hooks, task callables, the DAG factory and the CLI."""
