"""The Outbox page: a FastAPI app the Airflow api-server mounts under ``/outbox`` (see ``plugins/outbox_plugin.py``)."""
