"""The Airflow plugin object, found through the package's ``airflow.plugins`` entry point: installing the
package is all it takes (nothing to copy into the plugins folder)."""

from __future__ import annotations

from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/outbox"


class LazyPage:
    """The page as an ASGI app that imports FastAPI and the routes on its first request: every Airflow
    component loads plugins (task processes too), only the api-server serves them."""

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            from outbox_relay_airflow.outbox_page.app import app

            self._app = app
        await self._app(scope, receive, send)


class OutboxPlugin(AirflowPlugin):
    name = "outbox_relay"
    fastapi_apps = [{"app": LazyPage(), "url_prefix": URL_PREFIX, "name": "Outbox"}]  # noqa: RUF012
    external_views = [  # noqa: RUF012 - Airflow reads these class attributes
        {"name": "Outbox", "href": f"{URL_PREFIX}/", "destination": "nav", "url_route": "outbox"},
        {
            "name": "Outbox",
            "href": f"{URL_PREFIX}/dag/{{DAG_ID}}",
            "destination": "dag",
            "url_route": "outbox-dag",
        },
    ]
