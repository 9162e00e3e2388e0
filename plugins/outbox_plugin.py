"""Registers the Outbox page with Airflow (Airflow imports every .py file of its plugins folder): the
FastAPI app under /outbox, an "Outbox" entry in the navigation and an "Outbox" tab on every DAG's page."""

from __future__ import annotations

from outbox_relay_airflow.outbox_page.plugin import OutboxPlugin

__all__ = ["OutboxPlugin"]
