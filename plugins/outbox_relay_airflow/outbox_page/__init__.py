"""The Outbox page: a FastAPI app the Airflow api-server mounts under ``/outbox`` (registered by
``plugin.OutboxPlugin``)."""
