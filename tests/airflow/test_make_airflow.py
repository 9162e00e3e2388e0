"""`make airflow` as a person uses it: the script starts a real Airflow (api-server, scheduler,
dag-processor, triggerer) with live order traffic, listening on 127.0.0.1 only, prints the URL and a
generated login that works (admin/admin does not), the Outbox page lists the order service, the scheduled
relay sends the traffic's rows, a second shell with only the printed AIRFLOW_HOME line sees the same
connections (`outbox-relay plan orders`), and `make airflow-stop` ends every process it started."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.airflow.airflow_stack import _free_port, _psql
from tests.conftest import ROOT

# The live traffic uses the demo's topics and consumer groups: never beside the demo's own test.
pytestmark = [pytest.mark.airflow, pytest.mark.integration, pytest.mark.xdist_group("order_topics")]

SCRIPT = ROOT / "include" / "devstack" / "airflow.sh"


def _script(action: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SCRIPT), action], env=env, capture_output=True, text=True, timeout=300)


def _wait_for(what: str, seconds: float, probe: Any) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := probe()):
        assert time.monotonic() < deadline, f"{what}: not within {seconds}s"
        time.sleep(2)
    return found


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _listening_addresses(port: int) -> set[str]:
    """The IPv4/IPv6 addresses something listens on at ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


@pytest.mark.slow
def test_make_airflow_starts_airflow_with_the_outbox_page_and_live_traffic(
    db_engine: Engine, tmp_path: Path
) -> None:
    port, tag = _free_port(), f"t{os.getpid()}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "OUTBOX_RELAY"))}
    home = tmp_path / "airflow-local"
    env.update({
        "AIRFLOW_LOCAL_HOME": str(home), "AIRFLOW_PORT": str(port),
        "AIRFLOW_LOCAL_DB": f"outbox_live_{tag}", "AIRFLOW_LOCAL_META_DB": f"airflow_live_{tag}",
    })  # fmt: skip
    started = _script("start", env)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        assert f"http://127.0.0.1:{port}/" in started.stdout
        found = re.search(r"login admin / (\S+);", started.stdout)
        assert found and found[1] != "admin" and len(found[1]) >= 12, started.stdout
        assert _listening_addresses(port) == {"0100007F"}, "the api-server listens beyond 127.0.0.1"
        url = f"http://127.0.0.1:{port}"
        refused = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": "admin"}, timeout=30)
        assert refused.status_code == 401
        login = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": found[1]}, timeout=30)
        bearer = {"Authorization": f"Bearer {login.json()['access_token']}"}

        def services() -> dict[str, Any]:
            answer = httpx.get(f"{url}/outbox/api/services", headers=bearer, timeout=30)
            return {s["service"]: s for s in answer.json()} if answer.status_code == 200 else {}

        assert "orders" in _wait_for("the Outbox page lists the order service", 120, services)

        def relayed() -> bool:
            runs = httpx.get(f"{url}/api/v2/dags/outbox_orders_relay/dagRuns", params={"state": "success"},
                             headers=bearer, timeout=30)  # fmt: skip
            return runs.status_code == 200 and runs.json()["total_entries"] > 0

        _wait_for("a scheduled relay run succeeds", 240, relayed)
        sent = services()["orders"]["rows_by_status"]
        assert sum(n for status, n in sent.items() if status != "NEW") > 0, sent

        def inventory_processed() -> bool:  # the demo lists the inventory consumer's inbox (orders.yaml)
            answer = httpx.get(f"{url}/outbox/api/services/orders/inboxes", headers=bearer, timeout=30)
            found = {i["consumer"]: i for i in answer.json()} if answer.status_code == 200 else {}
            return "inventory" in found and found["inventory"]["processed"] + found["inventory"]["failed"] > 0

        _wait_for("the Outbox page shows the inventory inbox processing", 240, inventory_processed)
        _screenshot_of_the_orders_page(url, found[1])

        assert f"export AIRFLOW_HOME={home}" in started.stdout
        second_shell = {
            "PATH": os.environ["PATH"],
            "HOME": os.environ.get("HOME", "/root"),
            "AIRFLOW_HOME": str(home),
        }
        planned = subprocess.run([str(ROOT / ".venv" / "bin" / "outbox-relay"), "plan", "orders"], env=second_shell,
                                 capture_output=True, text=True, timeout=120)  # fmt: skip
        assert planned.returncode == 0, planned.stdout + planned.stderr[-3000:]
        assert "OK      orders" in planned.stdout and '"rows_by_status"' in planned.stdout
    finally:
        groups = {p.stem: int(p.read_text()) for p in home.glob("*.pid")}
        stopped = _script("stop", env)
        assert stopped.returncode == 0, stopped.stderr
        still_running = [name for name, group in groups.items() if _group_alive(group)]
        _psql(f"DROP DATABASE IF EXISTS airflow_live_{tag} WITH (FORCE)")
        with db_engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS outbox_live_{tag}"))
    # When `make airflow-stop` returns, everything it started has exited (the traffic generator used to
    # go on for about 25 s), and the api-server's port is free.
    assert set(groups) == {"api-server", "scheduler", "dag-processor", "triggerer", "traffic"}
    assert still_running == [], f"still running after make airflow-stop returned: {still_running}"
    assert not _listening(port)
    assert not list(home.glob("*.pid")), "make airflow-stop left pid files behind"


def _screenshot_of_the_orders_page(url: str, password: str) -> None:
    """The order service's page inside the Airflow UI, with live traffic (docs/operating.md shows it): its
    chart has lines, its inbox is listed."""
    from selenium.webdriver.common.by import By

    from tests.airflow.browser import browser, log_in, screenshot

    with browser(1400, 1300) as page:
        log_in(page, f"{url}/", "admin", password)
        page.find_element(By.LINK_TEXT, "Outbox").click()
        page.switch_to.frame(page.find_element(By.TAG_NAME, "iframe"))
        page.find_element(By.LINK_TEXT, "orders").click()
        lines = {
            p.get_attribute("data-series") for p in page.find_elements(By.CSS_SELECTOR, "#activity polyline")
        }
        assert {"published", "confirmed", "backlog"} <= lines
        assert page.find_element(By.LINK_TEXT, "inventory")
        page.switch_to.default_content()
        screenshot(page, "make-airflow-orders-page")


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
