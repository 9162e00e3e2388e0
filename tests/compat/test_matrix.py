"""The wheel alone, in each cell of the compatibility matrix (tests/compat/cells.py), is all Airflow needs:
the DAG folder that `outbox-relay init` writes loads without import errors, `airflow plugins` and `airflow
providers list` find the Outbox page and the provider through their entry points (the plugins folder is
empty), a relay run and a confirmations run through `airflow dags test` reach the real MariaDB and broker
(read back with kafka-python), and a real api-server serves the page, lists the provider and answers the
connection form's "Test" button. Connections live in the metadata database, where `outbox-relay` finds
them too."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, create_engine, make_url, text

from tests.airflow.airflow_stack import _free_port
from tests.airflow.browser import browser, log_in, screenshot, wait_until
from tests.compat.cells import CELLS, NEWEST, WORK, Cell, build_wheel, install
from tests.conftest import ROOT
from tests.integration.kafka_tools import read_all, send
from tests.stack import BOOTSTRAP, DB_SERVER_URL

pytestmark = [pytest.mark.integration, pytest.mark.airflow, pytest.mark.slow]

SERVICE = "orders"  # the example `outbox-relay init` writes
DAG_KINDS = ("relay", "replay", "backfill", "confirmations", "cleanup")
ROWS = 30


@dataclass
class Deployment:
    """One cell's venv and Airflow home, prepared as a user would: init, connections, tables."""

    cell: Cell
    venv: Path
    home: Path
    env: dict[str, str]
    database: str
    topics: dict[str, str]
    resolved: str
    engine: Engine = field(repr=False)

    def run(self, *args: str, timeout: float = 600, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A command of the venv (``airflow``, ``outbox-relay``, ``python``) in the cell's environment."""
        done = subprocess.run(
            [str(self.venv / "bin" / args[0]), *args[1:]],
            env=self.env,
            cwd=self.home,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check:
            assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}"
        return done

    def json_out(self, *args: str) -> Any:
        """The JSON an ``airflow ... -o json`` command prints (Airflow's log lines around it skipped)."""
        out = self.run(*args, "-o", "json").stdout
        found = re.search(r"^\[.*\]\s*$", out, re.S | re.M)
        assert found, f"no JSON in the output of {args}: {out[-2000:]}"
        return json.loads(found.group(0))


def _clean_env(home: Path, venv: Path) -> dict[str, str]:
    """Nothing of this checkout leaks in: no PYTHONPATH, no AIRFLOW_* of the test process, no services
    folder setting (the DAG folder's services/ is found by the DAG file and by Airflow's dags_folder)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AIRFLOW", "OUTBOX_RELAY", "PYTHON", "VIRTUAL_ENV", "_AIRFLOW"))
    }
    env.update(
        {
            "PATH": f"{venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}",
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
            "AIRFLOW__CORE__PLUGINS_FOLDER": str(
                home / "plugins"
            ),  # empty: the page comes from the entry point
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home}/airflow.db",
            "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
            "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex * 2,
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        }
    )
    return env


def _use_own_topics(dags: Path, tag: str) -> dict[str, str]:
    """The example's topics renamed for this run (the broker is shared with the rest of the suite)."""
    config = dags / "services" / f"{SERVICE}.yaml"
    topics = {"events": f"compat.{tag}.events", "results": f"compat.{tag}.results"}
    body = config.read_text()
    assert "orders.events" in body and "orders.results" in body, body
    config.write_text(
        body.replace("orders.events", topics["events"]).replace("orders.results", topics["results"])
    )
    return topics


@pytest.fixture(scope="module")
def deployment(request: pytest.FixtureRequest) -> Iterator[Deployment]:
    """One cell's deployment, shared by that cell's tests (which run on one xdist worker: see EACH_CELL)."""
    cell: Cell = request.param
    tag = f"{cell.name}{uuid.uuid4().hex[:8]}"
    work = WORK / cell.name
    venv, home = work / "venv", work / f"home-{tag}"
    resolved = install(cell, build_wheel(work / "dist"), venv)
    (home / "plugins").mkdir(parents=True)
    (home / "passwords.json").write_text(json.dumps({"admin": "compat-admin"}))
    server = make_url(DB_SERVER_URL)
    database = f"compat_{tag}"
    admin = create_engine(server.set(database=None))
    with admin.begin() as conn:
        conn.execute(text(f"CREATE DATABASE `{database}` CHARACTER SET utf8mb4"))
    env = _clean_env(home, venv)
    made = Deployment(
        cell, venv, home, env, database, {}, resolved, create_engine(server.set(database=database))
    )
    try:
        made.run("airflow", "db", "migrate")
        made.run("outbox-relay", "init", str(home / "dags"))
        made.topics = _use_own_topics(home / "dags", tag)
        password = f":{server.password}" if server.password else ""
        made.run(
            "airflow",
            "connections",
            "add",
            "outbox_db",
            "--conn-uri",
            f"outbox://{server.username}{password}@{server.host}:{server.port or 3306}/{database}",
        )
        kafka = {"conn_type": "kafka", "extra": {"bootstrap.servers": BOOTSTRAP}}
        made.run("airflow", "connections", "add", "kafka_default", "--conn-json", json.dumps(kafka))
        created = made.run("outbox-relay", "ddl", "--service", SERVICE, "--apply").stdout
        assert "created outbox_message" in created and "created outbox_relay_replay" in created, created
        made.run("airflow", "dags", "reserialize")
        yield made
    finally:
        made.engine.dispose()
        with admin.begin() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS `{database}`"))
        admin.dispose()
        shutil.rmtree(home, ignore_errors=True)


def _cells(*cells: Cell) -> pytest.MarkDecorator:
    """A test run once per cell; a cell's tests share its venv and Airflow home, so they go to one worker."""
    return pytest.mark.parametrize(
        "deployment",
        [pytest.param(c, id=c.name, marks=pytest.mark.xdist_group(f"compat_{c.name}")) for c in cells],
        indirect=True,
    )


EACH_CELL = _cells(*CELLS)


@EACH_CELL
def test_the_dag_folder_the_plugin_and_the_provider_load_from_the_wheel(deployment: Deployment) -> None:
    versions = dict(line.split()[:2] for line in deployment.resolved.splitlines()[2:] if line.strip())
    assert versions["apache-airflow"] == deployment.cell.airflow
    print(f"{deployment.cell}: {json.dumps(versions)}")  # the resolved set, in the test log
    assert deployment.json_out("airflow", "dags", "list-import-errors") == []
    dag_ids = {d["dag_id"] for d in deployment.json_out("airflow", "dags", "list")}
    assert {f"outbox_{SERVICE}_{kind}" for kind in DAG_KINDS} <= dag_ids, dag_ids
    (plugin,) = [p for p in deployment.json_out("airflow", "plugins") if p["name"] == "outbox_relay"]
    assert "airflow-outbox-relay==0.1.0" in str(plugin["source"]), plugin  # the entry point, not a file
    providers = {p["package_name"]: p for p in deployment.json_out("airflow", "providers", "list")}
    assert providers["airflow-outbox-relay"]["version"] == "0.1.0"


def _write_rows(deployment: Deployment) -> list[str]:
    """Rows written by the service side of the installed package (its writer API, in the cell's Python)."""
    url = deployment.engine.url
    script = (
        "import json, sys, pymysql\n"
        "from outbox_relay.writer import OutboxMessage, write_outbox\n"
        "c = pymysql.connect(host=sys.argv[1], port=int(sys.argv[2]), user=sys.argv[3], password=sys.argv[4],"
        " database=sys.argv[5])\n"
        f"ids = write_outbox(c, [OutboxMessage(sys.argv[6], f'k{{n % 3}}', 'OrderPlaced', {{'n': n}}) "
        f"for n in range({ROWS})])\n"
        "c.commit(); print(json.dumps(ids))\n"
    )
    out = deployment.run(
        "python",
        "-c",
        script,
        str(url.host),
        str(url.port or 3306),
        str(url.username),
        url.password or "",
        deployment.database,
        deployment.topics["events"],
    ).stdout
    return list(json.loads(out.strip().splitlines()[-1]))


def _statuses(deployment: Deployment) -> dict[str, int]:
    with deployment.engine.connect() as conn:
        rows = conn.execute(text("SELECT status, COUNT(*) FROM outbox_message GROUP BY status"))
        return {str(status): int(n) for status, n in rows}


@EACH_CELL
def test_a_relay_run_and_a_confirmations_run_through_airflow_dags_test(deployment: Deployment) -> None:
    written = _write_rows(deployment)
    deployment.run("airflow", "dags", "test", f"outbox_{SERVICE}_relay")
    assert _statuses(deployment) == {"SENT": ROWS}
    records = read_all(deployment.topics["events"])
    assert [r.headers["outbox-message-id"] for r in sorted(records, key=lambda r: (r.key, r.offset))] == [
        written[n] for key in ("k0", "k1", "k2") for n in range(ROWS) if f"k{n % 3}" == key
    ]  # each message once, in its key's order
    validated = deployment.run("outbox-relay", "validate", SERVICE).stdout  # connections from the metadata DB
    assert f"OK      {SERVICE}" in validated, validated
    answers = [
        json.dumps(
            {
                "message_id": m,
                "status": "FAILED" if n == 0 else "SUCCESS",
                "error": "out of stock" if n == 0 else None,
            }
        ).encode()
        for n, m in enumerate(written)
    ]
    send(deployment.topics["results"], [(m, a) for m, a in zip(written, answers, strict=True)])
    deployment.run("airflow", "dags", "test", f"outbox_{SERVICE}_confirmations")
    assert _statuses(deployment) == {"CONFIRMED": ROWS - 1, "FAILED": 1}


@pytest.fixture(scope="module")
def api_server(deployment: Deployment) -> Iterator[str]:
    """One api-server per cell, for the REST checks and the browser's (each start costs 20-25 s)."""
    port = _free_port()
    log = (deployment.home / "api-server.log").open("w")
    process = subprocess.Popen(
        [str(deployment.venv / "bin" / "airflow"), "api-server", "--port", str(port)],
        env=deployment.env,
        cwd=deployment.home,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        ready = subprocess.run(
            [
                str(ROOT / ".venv" / "bin" / "python"),
                str(ROOT / "include/devstack/api_ready.py"),
                str(port),
                "240",
            ],
            capture_output=True,
            text=True,
        )
        assert ready.returncode == 0, ready.stderr + (deployment.home / "api-server.log").read_text()[-4000:]
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
        log.close()


def _test_button(url: str, headers: dict[str, str], deployment: Deployment, database: str) -> dict[str, Any]:
    """What the connection form's "Test" button sends: the form's fields, type outbox, nothing stored."""
    server = deployment.engine.url
    body = {
        "connection_id": "form_check",
        "conn_type": "outbox",
        "host": server.host,
        "port": server.port or 3306,
        "login": server.username,
        "password": server.password or "",
        "schema": database,
        "extra": json.dumps({"charset": "utf8mb4"}),
    }
    reply = httpx.post(f"{url}/api/v2/connections/test", json=body, headers=headers, timeout=60)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


@EACH_CELL
def test_a_real_api_server_shows_the_page_the_provider_its_form_and_test_button(
    deployment: Deployment, api_server: str
) -> None:
    login = httpx.post(
        f"{api_server}/auth/token", json={"username": "admin", "password": "compat-admin"}, timeout=30
    )
    assert login.status_code in (200, 201), login.text
    headers = {"Authorization": f"Bearer {login.json()['access_token']}"}

    def api(path: str) -> Any:
        reply = httpx.get(f"{api_server}{path}", headers=headers, timeout=60)
        assert reply.status_code == 200, f"{path}: {reply.status_code} {reply.text[:2000]}"
        return reply.json()

    assert "outbox_relay" in {p["name"] for p in api("/api/v2/plugins")["plugins"]}
    assert "airflow-outbox-relay" in {p["package_name"] for p in api("/api/v2/providers")["providers"]}
    assert f"outbox_{SERVICE}_relay" in {d["dag_id"] for d in api("/api/v2/dags")["dags"]}
    forms = {h["connection_type"]: h for h in api("/ui/connections/hook_meta")}
    form = forms["outbox"]
    assert form["hook_name"] == "Outbox database (MySQL / MariaDB)"
    if deployment.cell.airflow.startswith("3.1.") and not deployment.cell.has_fab:
        # Airflow 3.1 builds forms from the FAB provider's UI libraries: without them no provider has fields.
        assert forms["smtp"]["extra_fields"] is None and form["extra_fields"] is None
    else:
        assert {"charset", "ssl_ca", "ssl_verify_cert"} <= set(form["extra_fields"]), form
        assert form["standard_fields"]["url_schema"]["title"] == "Database", form
    page = httpx.get(f"{api_server}/outbox/", headers=headers, timeout=60)
    assert page.status_code == 200 and SERVICE in page.text, page.text[:2000]
    good = _test_button(api_server, headers, deployment, deployment.database)
    assert good["status"] is True and good["message"].startswith("Connected: server "), good
    bad = _test_button(api_server, headers, deployment, "no_such_database_here")
    assert bad["status"] is False and "no_such_database_here" in bad["message"], bad


@_cells(NEWEST)
def test_in_a_browser_the_providers_page_the_form_and_the_test_button(
    deployment: Deployment, api_server: str
) -> None:
    """As a person sees them (screenshots in .run/test-artifacts/): the Providers page lists the package,
    the Add Connection form offers the outbox database with its relabelled and extra fields, and the
    Connections list's "Test Connection" button on outbox_db reports the server it reached."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    with browser(height=1300) as page:
        log_in(page, f"{api_server}/", "admin", "compat-admin")
        page.get(f"{api_server}/providers")
        wait_until(
            lambda: "airflow-outbox-relay" in page.page_source, 60, "the Providers page does not list it"
        )
        screenshot(page, "compat-providers-page")
        page.get(f"{api_server}/connections")
        wait_until(
            lambda: "outbox_db" in page.page_source, 60, "the Connections page does not list outbox_db"
        )
        next(b for b in page.find_elements(By.TAG_NAME, "button") if b.text == "Add Connection").click()
        kind = page.find_element(By.CSS_SELECTOR, "input[role=combobox]")
        kind.send_keys("Outbox")
        wait_until(
            lambda: page.find_elements(By.CSS_SELECTOR, "[role=option]"), 30, "no connection type offered"
        )
        assert [o.text for o in page.find_elements(By.CSS_SELECTOR, "[role=option]")] == [
            "Outbox database (MySQL / MariaDB)"
        ]
        kind.send_keys(Keys.ENTER)
        wait_until(lambda: "Extra Fields" in page.page_source, 30, "the form did not open")
        assert "Database" in {label.text for label in page.find_elements(By.TAG_NAME, "label")}  # relabelled
        next(b for b in page.find_elements(By.TAG_NAME, "button") if b.text == "Extra Fields").click()
        wait_until(lambda: "TLS CA file" in page.page_source, 30, "the extra fields are not shown")
        labels = {label.text for label in page.find_elements(By.TAG_NAME, "label")}
        assert {"Charset", "TLS CA file", "Verify the server's certificate"} <= labels, labels
        screenshot(page, "compat-connection-form")
        # Saved through the form as it is (switches untouched), the connection works: no TLS is forced on.
        server = deployment.engine.url
        next(b for b in page.find_elements(By.TAG_NAME, "button") if b.text == "Standard Fields").click()
        fields = {
            "connection_id": "ui_made",
            "host": str(server.host),
            "login": str(server.username),
            "password": server.password or "",
            "port": str(server.port or 3306),
            "schema": deployment.database,
        }
        for name, value in fields.items():
            if value:
                page.find_element(By.NAME, name).send_keys(value)
        next(b for b in page.find_elements(By.TAG_NAME, "button") if b.text == "Save").click()
        wait_until(lambda: len(_rows(page, "ui_made")) == 1, 60, "the saved connection is not listed")
        for conn_id in ("outbox_db", "ui_made"):
            (row,) = _rows(page, conn_id)
            tests = [
                b
                for b in row.find_elements(By.TAG_NAME, "button")
                if b.get_attribute("aria-label") == "Test Connection"
            ]
            page.execute_script("arguments[0].click()", tests[0])  # past the last button's tooltip
            wait_until(
                lambda: "Connected: server " in page.page_source, 60, f"the Test button of {conn_id} failed"
            )
            screenshot(page, f"compat-test-button-{conn_id}")
            _dismiss_toasts(page)


def _rows(page: Any, conn_id: str) -> list[Any]:
    from selenium.webdriver.common.by import By

    return [r for r in page.find_elements(By.TAG_NAME, "tr") if r.text.split()[:1] == [conn_id]]


def _dismiss_toasts(page: Any) -> None:
    """Close the result toasts, so the next Test's message is the only one on the page."""
    from selenium.webdriver.common.by import By

    for close in page.find_elements(By.CSS_SELECTOR, "[data-part=close-trigger]"):
        close.click()
    wait_until(lambda: "Connected: server " not in page.page_source, 30, "a Test result toast stayed")
