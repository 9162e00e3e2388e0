"""The Outbox page's routes: HTML for people (inside the Airflow UI), the same as JSON under ``/api`` for
scripts. Read-only; every route needs an authenticated Airflow user (see ``access``)."""

from __future__ import annotations

import threading
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from airflow.api_fastapi.core_api.security import GetUserDep
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from sqlalchemy import Engine

from outbox_relay.config import ServiceConfig
from outbox_relay.config.loader import LoadedServices
from outbox_relay.dashboard import (
    MATCHES_COUNTED,
    Dashboard,
    RowDetail,
    RowSearch,
    SearchResult,
    ServiceFigures,
)
from outbox_relay.errors import ConfigurationError
from outbox_relay.explain import not_found
from outbox_relay.inbox_view import InboxFigures, InboxRow, InboxView
from outbox_relay.models import FAILED, UNCONFIRMED
from outbox_relay.times import parse_time
from outbox_relay_airflow.connections import look_up_like_airflow_cli
from outbox_relay_airflow.dag_factory import service_dag_id
from outbox_relay_airflow.hooks import OutboxDatabaseHook
from outbox_relay_airflow.outbox_page.access import ReadableService, may
from outbox_relay_airflow.outbox_page.actions import check_may_trigger, check_same_origin, trigger
from outbox_relay_airflow.outbox_page.chart import activity_charts
from outbox_relay_airflow.outbox_page.runs import latest_runs, run_state
from outbox_relay_airflow.services_folder import read_services

templates = Jinja2Templates(
    directory=str(Path(__file__).with_name("templates")),
    # Links are built from the mount point (/outbox): the api-server's router, not this app's, resolves
    # route names, so url_for cannot find the page's own routes.
    context_processors=[lambda request: {"base": request.scope.get("root_path", "")}],
)
templates.env.globals["activity_charts"] = activity_charts
# The api-server runs no task: connections are found where `airflow connections get` finds them.
look_up_like_airflow_cli()
app = FastAPI(title="Outbox", description="Outbox tables relayed by this Airflow: figures, rows, history.")

PAGE_POOL_SIZE = 2  # idle connections kept per database connection; busier moments open a few more
_engines: dict[tuple[str, str], Engine] = {}
_engines_lock = threading.Lock()


def _loaded() -> LoadedServices:
    """The service folder, read per request: a config changed on disk shows at once."""
    return read_services()


def _services() -> dict[str, ServiceConfig]:
    return dict(_loaded().services)


def _config(service: str) -> ServiceConfig:
    found = _services().get(service)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no outbox service {service!r} is registered")
    return found


def _engine(config: ServiceConfig, conn_id: str | None = None) -> Engine:
    """One small pool per database connection (and session time zone), shared by its services and kept
    for the api-server's life: a hundred services on one database keep two idle connections, not a
    hundred. ``conn_id``: another database of the service (a consumer's inbox)."""
    key = (conn_id or config.connections.db, config.db_time_zone)
    with _engines_lock:
        if key not in _engines:
            _engines[key] = OutboxDatabaseHook(key[0]).get_engine(config.db_time_zone, PAGE_POOL_SIZE)
        return _engines[key]


def _inbox_figures(config: ServiceConfig) -> list[InboxFigures]:
    """Each registered inbox's figures; an unreachable database is shown as a problem of that inbox."""
    shown = []
    for inbox in config.inboxes:
        view = InboxView(inbox, config.connections.db)
        try:
            with _engine(config, view.db).connect() as conn:
                shown.append(view.figures(conn))
        except Exception as exc:  # shown on the page, not a 500
            figures = InboxFigures(inbox.consumer, str(inbox.table), view.db)
            figures.readable = False
            figures.problems.append(f"database connection {view.db!r} failed: {type(exc).__name__}: {exc}")
            shown.append(figures)
    return shown


def _inbox(config: ServiceConfig, consumer: str, table: str | None) -> InboxView:
    for inbox in config.inboxes:
        if inbox.consumer == consumer and (table is None or str(inbox.table) == table):
            return InboxView(inbox, config.connections.db)
    listed = ", ".join(i.consumer for i in config.inboxes) or "none"
    raise HTTPException(
        status.HTTP_404_NOT_FOUND,
        f"service {config.service!r} lists no inbox of consumer {consumer!r} (its inboxes: {listed})",
    )


def _inbox_page_data(
    config: ServiceConfig, consumer: str, table: str | None
) -> tuple[InboxFigures, list[InboxRow]]:
    view = _inbox(config, consumer, table)
    with _engine(config, view.db).connect() as conn:
        figures = view.figures(conn)
        return figures, view.newest(conn) if figures.readable else []


def _figures(config: ServiceConfig, with_activity: bool = False) -> ServiceFigures:
    try:
        with _engine(config).connect() as conn:
            return Dashboard(config).figures(conn, with_activity)
    except Exception as exc:  # an unreachable database is shown on the page, not a 500
        figures = ServiceFigures(config.service, config.table)
        figures.problems.append(
            f"database connection {config.connections.db!r} failed: {type(exc).__name__}: {exc}"
        )
        return figures


def _time(value: str | None, name: str) -> datetime | None:
    if not value:
        return None
    try:
        return parse_time(value, name)
    except (ValueError, ConfigurationError) as exc:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None


@dataclass(frozen=True)
class RowQuery:
    """The rows a list shows, as the query string gives them (the filter form's fields)."""

    kind: str = FAILED
    key: str | None = None
    event_type: str | None = None
    error: str | None = None
    since: str | None = None
    until: str | None = None

    def search(self) -> RowSearch:
        if self.kind not in {FAILED, UNCONFIRMED}:
            raise HTTPException(
                status.HTTP_422_UNPROCESSABLE_CONTENT, f"kind must be {FAILED!r} or {UNCONFIRMED!r}"
            )
        since, until = _time(self.since, "since"), _time(self.until, "until")
        return RowSearch(
            self.kind, since, until, self.key or None, self.event_type or None, self.error or None
        )

    def form(self) -> dict[str, str]:
        """The filter form's values, as given."""
        return {name: value or "" for name, value in asdict(self).items()}


Rows = Annotated[RowQuery, Depends()]
Text = Annotated[str | None, Query()]
DAG_KINDS = {"relay", "replay", "backfill", "confirmations", "cleanup", "reconcile"}


# --- JSON ----------------------------------------------------------------------------------------------


@app.get("/api/services")
def api_services(user: GetUserDep) -> list[dict[str, Any]]:
    """Every service whose DAGs the user may read, with its figures."""
    return [_figures(c).as_dict() for name, c in sorted(_services().items()) if may(user, "GET", name)]


@app.get("/api/services/{service}")
def api_service(service: ReadableService) -> dict[str, Any]:
    return {**_figures(_config(service), with_activity=True).as_dict(), "runs": latest_runs(service)}


@app.get("/api/services/{service}/rows")
def api_rows(
    service: ReadableService, rows: Rows, before: Text = None, limit: int = 50
) -> list[dict[str, Any]]:
    config = _config(service)
    wanted = rows.search()
    with _engine(config).connect() as conn:
        return [asdict(r) for r in Dashboard(config).rows(conn, wanted, before or None, limit)]


@app.get("/api/services/{service}/matching")
def api_matching(service: ReadableService, rows: Rows) -> dict[str, Any]:
    """How many rows a filter matches (what "select all matching" replays), counted up to a bound."""
    config = _config(service)
    wanted = rows.search()
    with _engine(config).connect() as conn:
        return {"matching": Dashboard(config).count_matching(conn, wanted), "counted_up_to": MATCHES_COUNTED}


def _search(config: ServiceConfig, q: str) -> SearchResult:
    with _engine(config).connect() as conn:
        return Dashboard(config).search(conn, q)


@app.get("/api/services/{service}/search")
def api_search(service: ReadableService, q: str) -> dict[str, Any]:
    """The row whose message id or primary key ``q`` is, and the newest rows whose key it is."""
    return asdict(_search(_config(service), q))


@app.get("/api/services/{service}/runs/{kind}/{run_id}")
def api_run(service: ReadableService, kind: str, run_id: str) -> dict[str, Any]:
    """A run of one of the service's DAGs, with its tasks' states: what the page polls after an action."""
    if kind not in DAG_KINDS:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"kind must be one of {sorted(DAG_KINDS)}")
    found = run_state(service, kind, run_id)
    if found is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, f"no run {run_id!r} of {service_dag_id(service, kind)}"
        )
    return found


@app.get("/api/services/{service}/inboxes")
def api_inboxes(service: ReadableService) -> list[dict[str, Any]]:
    """The figures of each consumer inbox the service lists (``inboxes``)."""
    return [f.as_dict() for f in _inbox_figures(_config(service))]


@app.get("/api/services/{service}/inboxes/{consumer}")
def api_inbox(service: ReadableService, consumer: str, table: Text = None) -> dict[str, Any]:
    """One consumer's inbox: its figures and newest rows."""
    figures, newest = _inbox_page_data(_config(service), consumer, table)
    return {**figures.as_dict(), "newest": [asdict(r) for r in newest]}


def _row(service: str, reference: str) -> tuple[ServiceConfig, RowDetail]:
    config = _config(service)
    with _engine(config).connect() as conn:
        detail = Dashboard(config).row(conn, reference)
    if detail is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, not_found(config, reference))
    return config, detail


@app.get("/api/services/{service}/rows/{reference}")
def api_row(service: ReadableService, reference: str) -> dict[str, Any]:
    detail = _row(service, reference)[1]
    return {"explanation": detail.explanation, "content": asdict(detail.content)}


def _triggered(
    service: str, kind: str, params: dict[str, Any], request: Request, user: Any
) -> dict[str, Any]:
    check_same_origin(request)
    check_may_trigger(user, service, kind)
    run_id = trigger(_config(service), kind, params, user)
    dag_id = service_dag_id(service, kind)
    return {"dag_id": dag_id, "run_id": run_id, "link": f"/dags/{dag_id}/runs/{run_id}"}


@app.post("/api/services/{service}/replay")
def api_replay(
    service: ReadableService, body: dict[str, Any], request: Request, user: GetUserDep
) -> dict[str, Any]:
    """Trigger the service's replay DAG with ``body`` as its params (those of the replay DAG)."""
    return _triggered(service, "replay", body, request, user)


@app.post("/api/services/{service}/backfill")
def api_backfill(
    service: ReadableService, body: dict[str, Any], request: Request, user: GetUserDep
) -> dict[str, Any]:
    """Trigger the service's backfill DAG with ``body`` as its params (those of the backfill DAG)."""
    return _triggered(service, "backfill", body, request, user)


# --- HTML ----------------------------------------------------------------------------------------------


@app.get("/", response_class=HTMLResponse)
def index(request: Request, user: GetUserDep) -> Response:
    loaded = _loaded()  # one read of the folder: the services and the files that are invalid
    shown = [_figures(c) for name, c in sorted(loaded.services.items()) if may(user, "GET", name)]
    errors = [str(e) for e in loaded.errors]
    return templates.TemplateResponse(request, "index.html", {"services": shown, "errors": errors})


@app.get("/services/{service}", response_class=HTMLResponse)
def service_page(request: Request, service: ReadableService, shown: Rows, before: Text = None) -> Response:
    config = _config(service)
    wanted = shown.search()
    figures = _figures(config, with_activity=True)
    rows, matching = [], 0
    if not figures.problems:
        dashboard = Dashboard(config)
        with _engine(config).connect() as conn:
            rows = dashboard.rows(conn, wanted, before or None)
            matching = dashboard.count_matching(conn, wanted)
    context = {
        "config": config,
        "figures": figures,
        "runs": latest_runs(service),
        "rows": rows,
        "wanted": wanted,
        "matching": matching,
        "counted_up_to": MATCHES_COUNTED,
        "inboxes": _inbox_figures(config),
        "filters": shown.form(),
    }
    return templates.TemplateResponse(request, "service.html", context)


@app.get("/services/{service}/search", response_class=HTMLResponse)
def search_page(request: Request, service: ReadableService, q: str = "") -> Response:
    config = _config(service)
    context = {"config": config, "found": _search(config, q)}
    return templates.TemplateResponse(request, "search.html", context)


@app.get("/services/{service}/inboxes/{consumer}", response_class=HTMLResponse)
def inbox_page(request: Request, service: ReadableService, consumer: str, table: Text = None) -> Response:
    config = _config(service)  # the service folder, read once per request
    figures, newest = _inbox_page_data(config, consumer, table)
    context = {"config": config, "inbox": figures, "newest": newest}
    return templates.TemplateResponse(request, "inbox.html", context)


@app.get("/services/{service}/rows/{reference}", response_class=HTMLResponse)
def row_page(request: Request, service: ReadableService, reference: str) -> Response:
    config, detail = _row(service, reference)
    return templates.TemplateResponse(request, "row.html", {"config": config, "detail": detail})


@app.post("/services/{service}/replay", response_class=HTMLResponse)
async def replay_form(request: Request, service: ReadableService, user: GetUserDep) -> Response:
    """The page's requeue / republish form: selected rows (row_ids), or every row the filter matches."""
    form = await request.form()
    params: dict[str, Any] = {
        k: str(v) for k, v in form.items() if k not in {"row_ids", "error", "all_matching"}
    }
    every = form.get("all_matching") == "on"
    params["row_ids"] = "" if every else " ".join(str(v) for v in form.getlist("row_ids"))
    if not every and not params["row_ids"]:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "no rows chosen: check the rows to replay, or check 'all rows that match the filter'",
        )
    if every and form.get("error"):
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            "the error-text filter is not a replay param: check the rows to replay instead",
        )
    params["statuses"] = [params.get("statuses") or FAILED]
    params["dry_run"] = params.get("dry_run") == "on"
    return _triggered_page(request, service, "replay", params, user)


@app.post("/services/{service}/backfill", response_class=HTMLResponse)
async def backfill_form(request: Request, service: ReadableService, user: GetUserDep) -> Response:
    """The page's backfill form: a creation-time window, a reason, republish, pace, dry run."""
    form = await request.form()
    params: dict[str, Any] = {k: str(v).strip() for k, v in form.items()}
    for flag in ("republish", "dry_run"):
        params[flag] = params.get(flag) == "on"
    for number in ("max_rows_per_second", "chunk_seconds"):
        params[number] = _form_number(params.get(number), number)
    return _triggered_page(request, service, "backfill", params, user)


def _form_number(raw: str | None, name: str) -> float | None:
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, f"{name}: {raw!r} is not a number"
        ) from None


def _triggered_page(request: Request, service: str, kind: str, params: dict[str, Any], user: Any) -> Response:
    run = _triggered(service, kind, params, request, user)
    context = {
        "service": service,
        "kind": kind,
        "dag_id": run["dag_id"],
        "run_id": run["run_id"],
        "params": params,
    }
    return templates.TemplateResponse(request, "triggered.html", context)


@app.get("/dag/{dag_id}", response_class=HTMLResponse)
def dag_tab(request: Request, dag_id: str, user: GetUserDep) -> Response:
    """The Outbox tab on a DAG's page: its service's page, for the DAGs this project generates."""
    for name in _services():
        if any(dag_id == service_dag_id(name, kind) for kind in DAG_KINDS):
            where = f"{request.scope.get('root_path', '')}/services/{quote(name)}"
            return RedirectResponse(where, status.HTTP_303_SEE_OTHER)
    return templates.TemplateResponse(request, "not_outbox.html", {"dag_id": dag_id})
