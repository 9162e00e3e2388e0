"""The Outbox page inside a real api-server (with scheduler and dag-processor): anonymous requests are
refused, a logged-in viewer sees figures equal to what SQL says, the row list and a row's detail, the DAG
tab leads to the service's page, actions trigger the replay DAG as the user (a viewer may not), and
Airflow lists the plugin with its views."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.airflow.airflow_stack import AirflowStack, airflow_stack
from tests.airflow.browser import browser, log_in, screenshot
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows
from tests.stack import airflow_connections, service_folder

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def _counts(engine: Engine) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT status, COUNT(*) FROM outbox_message GROUP BY status")).all()
    return {str(s): int(n) for s, n in rows}


def _row_id(engine: Engine, message_id: str) -> int:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT id FROM outbox_message WHERE message_id = :m"), {"m": message_id})
        return int(found.scalar_one())


@pytest.mark.slow
def test_outbox_page_needs_a_login_and_shows_what_sql_says(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("page")
    create_topics(topic, f"{topic}.results")
    services = service_folder(
        tmp_path,
        "billing",
        f"topic: {topic}\nschedule: null\nconfirm_schedule: null\nretention: null\n"
        f"confirmation: {{topic: {topic}.results}}\n",
    )
    ids = insert_rows(db_engine, topic, ["a", "b", "c", "d", "e"], payload={"card": "4111 <script>"})
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET status = 'SENT', sent_at = NOW(6) WHERE message_id = :m"),
                     {"m": ids[0]})  # fmt: skip
        conn.execute(
            text("UPDATE outbox_message SET status = 'FAILED', attempts = 5, last_error = 'schema v2' "
                 "WHERE message_id IN (:a, :b)"), {"a": ids[1], "b": ids[2]},
        )  # fmt: skip
    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(db_engine)}
    with airflow_stack(
        tmp_path / "airflow", env, users={"viewer": "viewer", "operator": "user", "admin": "admin"}
    ) as stack:
        page = f"{stack.url}/outbox"
        for path in ("/", "/api/services", "/services/billing", f"/api/services/billing/rows/{ids[1]}"):
            anonymous = httpx.get(f"{page}{path}", timeout=30)
            assert anonymous.status_code == 401, (path, anonymous.status_code, anonymous.text[:300])
        forged = httpx.get(f"{page}/api/services", headers={"Authorization": "Bearer forged"}, timeout=30)
        assert forged.status_code in {401, 403}

        token = stack.token("viewer")
        bearer = {"Authorization": f"Bearer {token}"}
        (figures,) = httpx.get(f"{page}/api/services", headers=bearer, timeout=30).json()
        assert figures["rows_by_status"] == _counts(db_engine) == {"NEW": 2, "SENT": 1, "FAILED": 2}
        assert (figures["new"], figures["unconfirmed"], figures["failed"]) == (2, 1, 2)
        assert figures["top_errors"] == [["schema v2", 2]] and figures["problems"] == []
        service = httpx.get(f"{page}/api/services/billing", headers=bearer, timeout=30).json()
        assert set(service["runs"]) >= {"relay", "confirmations", "backfill", "replay"}
        listed = httpx.get(f"{page}/api/services/billing/rows", headers=bearer, timeout=30).json()
        assert [r["message_id"] for r in listed] == [ids[2], ids[1]]
        detail = httpx.get(f"{page}/api/services/billing/rows/{ids[1]}", headers=bearer, timeout=30).json()
        assert detail["explanation"]["state"] == "failed" and "4111" in detail["content"]["payload_preview"]
        assert httpx.get(f"{page}/api/services/nope", headers=bearer, timeout=30).status_code == 404

        # The browser's way: Airflow's JWT cookie. HTML is escaped; the DAG tab redirects to the service.
        cookies = {"_token": token}
        html = httpx.get(f"{page}/services/billing", cookies=cookies, timeout=30)
        assert html.status_code == 200 and 'id="failed">2<' in html.text and ids[1] in html.text
        row = httpx.get(f"{page}/services/billing/rows/{ids[1]}", cookies=cookies, timeout=30)
        assert row.status_code == 200 and "&lt;script&gt;" in row.text and "<script>" not in row.text
        tab = httpx.get(f"{page}/dag/outbox_billing_relay", cookies=cookies, timeout=30)
        assert tab.status_code == 303 and tab.headers["location"].endswith("/outbox/services/billing")
        other = httpx.get(f"{page}/dag/some_other_dag", cookies=cookies, timeout=30)
        assert other.status_code == 200 and "not a DAG of a registered outbox service" in other.text

        # Actions trigger the replay DAG as the user: a viewer may not; an operator's run requeues the row.
        replay = {
            "reason": "INC-7 schema fixed",
            "statuses": ["failed"],
            "row_ids": str(_row_id(db_engine, ids[1])),
        }
        refused = httpx.post(f"{page}/api/services/billing/replay", json=replay, headers=bearer, timeout=30)
        assert refused.status_code == 403 and "outbox_billing_replay" in refused.text
        operator = {"Authorization": f"Bearer {stack.token('operator')}"}
        for body, origin, code, message in [
            ({**replay, "reason": ""}, None, 422, "a reason is required"),
            ({**replay, "created_from": "soon"}, None, 422, "'soon' is not an ISO date"),
            (replay, "https://evil.example", 403, "cross-site request refused"),
        ]:
            headers = {**operator, **({"Origin": origin} if origin else {})}
            bad = httpx.post(f"{page}/api/services/billing/replay", json=body, headers=headers, timeout=30)
            assert bad.status_code == code and message in bad.text, (body, bad.text)
        triggered = httpx.post(
            f"{page}/api/services/billing/replay", json=replay, headers=operator, timeout=30
        )
        assert triggered.status_code == 200, triggered.text
        run_id = triggered.json()["run_id"]
        assert (
            stack.wait_for_task("outbox_billing_replay", run_id, "replay", {"success", "failed"}, 240)
            == "success"
        )
        with db_engine.connect() as conn:
            who = conn.execute(text("SELECT requested_by, reason, run_id FROM outbox_relay_replay")).all()
        assert [tuple(w) for w in who] == [("operator", "INC-7 schema fixed", run_id)]
        assert _counts(db_engine)["FAILED"] == 1

        _backfill_from_the_page(stack, page, bearer, operator)
        _as_a_person(stack, db_engine, ids[2])

        plugins = httpx.get(f"{stack.url}/api/v2/plugins", headers=bearer, timeout=30).json()["plugins"]
        (ours,) = [p for p in plugins if p["name"] == "outbox_relay"]
        assert [v["destination"] for v in ours["external_views"]] == ["nav", "dag"]
        assert ours["fastapi_apps"][0]["url_prefix"] == "/outbox"


def _backfill_from_the_page(
    stack: AirflowStack, page: str, viewer: dict[str, str], operator: dict[str, str]
) -> None:
    """The backfill action triggers the backfill DAG as the user after the DAG's own param checks."""
    url = f"{page}/api/services/billing/backfill"
    window = {
        "since": "2020-01-01T00:00",
        "until": "2030-01-01T00:00",
        "reason": "INC-9 outage",
        "dry_run": True,
    }
    refused = httpx.post(url, json=window, headers=viewer, timeout=30)
    assert refused.status_code == 403 and "outbox_billing_backfill" in refused.text
    for body, message in [
        ({**window, "since": "yesterday"}, "'yesterday' is not an ISO date"),
        ({**window, "until": "2019-01-01"}, "since (2020-01-01 00:00:00) must be before until"),
        ({**window, "reason": " "}, "a reason is required"),
    ]:
        bad = httpx.post(url, json=body, headers=operator, timeout=30)
        assert bad.status_code == 422 and message in bad.text, (body, bad.text)
    triggered = httpx.post(url, json=window, headers=operator, timeout=30)
    assert triggered.status_code == 200, triggered.text
    run_id = triggered.json()["run_id"]
    assert stack.wait_for_run("outbox_billing_backfill", run_id) == "success"
    run = stack.api_as("admin", "GET", f"/dags/outbox_billing_backfill/dagRuns/{run_id}")
    assert run["triggering_user_name"] == "operator" and run["conf"]["reason"] == "INC-9 outage"


def _as_a_person(stack: AirflowStack, engine: Engine, failed: str) -> None:
    """Chromium: log in, open Outbox from the navigation, check the figures against SQL, open a FAILED row,
    requeue it from the page, watch the replay run, relay it, see it sent. Screenshots in .run/test-artifacts."""
    from selenium.webdriver.common.by import By

    with browser() as page:
        page.get(f"{stack.url}/outbox/")
        assert "Not authenticated" in page.page_source  # no cookie yet: refused
        log_in(page, f"{stack.url}/", "admin", "admin")
        page.find_element(By.LINK_TEXT, "Outbox").click()
        page.switch_to.frame(page.find_element(By.TAG_NAME, "iframe"))
        page.find_element(By.LINK_TEXT, "billing").click()
        counts = _counts(engine)
        assert page.find_element(By.ID, "failed").text == str(counts["FAILED"])
        for status, n in counts.items():
            assert page.find_element(By.CSS_SELECTOR, f'td[data-status="{status}"]').text == str(n)
        page.switch_to.default_content()
        screenshot(page, "outbox-service-page")
        page.switch_to.frame(page.find_element(By.TAG_NAME, "iframe"))
        page.find_element(By.LINK_TEXT, failed).click()
        assert page.find_element(By.ID, "state").text == "failed"
        page.find_element(By.LINK_TEXT, "Service billing").click()
        row_id = _row_id(engine, failed)
        page.find_element(By.CSS_SELECTOR, f'input[name="row_ids"][value="{row_id}"]').click()
        page.find_element(By.ID, "reason").send_keys("INC-8 requeued from the page")
        page.find_element(By.ID, "replay").click()
        run_id = page.find_element(By.CSS_SELECTOR, "#triggered a").text
        assert (
            stack.wait_for_task("outbox_billing_replay", run_id, "replay", {"success", "failed"}, 240)
            == "success"
        )
        assert _status(engine, failed) == "NEW"
        relay = stack.api_as(
            "admin", "POST", "/dags/outbox_billing_relay/dagRuns", json={"logical_date": None}
        )
        assert stack.wait_for_task("outbox_billing_relay", relay["dag_run_id"], "relay", {"success", "failed"},
                                   240) == "success"  # fmt: skip
        page.get(f"{stack.url}/outbox/services/billing/rows/{failed}")
        assert page.find_element(By.ID, "state").text == "sent"
        assert "requeue by admin" in page.page_source
        screenshot(page, "outbox-row-detail")


def _status(engine: Engine, message_id: str) -> str:
    with engine.connect() as conn:
        found = conn.execute(
            text("SELECT status FROM outbox_message WHERE message_id = :m"), {"m": message_id}
        )
        return str(found.scalar_one())
