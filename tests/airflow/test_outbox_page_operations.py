"""The Outbox page as an on-call operator uses it, in Chromium on a real api-server, scheduler and
dag-processor: search by message id and by key, the last hour as a chart, "all rows that match the
filter" with its count, the triggered replay run followed live until it ends, a consumer's inbox, and no
"next attempt at" on a FAILED row. Screenshots in .run/test-artifacts/."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from outbox_relay.store.inbox import InboxTable
from outbox_relay.writer import OutboxMessage, write_outbox
from tests.airflow.airflow_stack import AirflowStack, airflow_stack
from tests.airflow.browser import browser, log_in, screenshot, wait_until
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows
from tests.stack import airflow_connections, service_folder

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def _statuses(engine: Engine, message_ids: list[str]) -> list[str]:
    with engine.connect() as conn:
        return [
            str(
                conn.execute(
                    text("SELECT status FROM outbox_message WHERE message_id = :m"), {"m": m}
                ).scalar()
            )
            for m in message_ids
        ]


def _consumer_inbox(engine: Engine, message_ids: list[str]) -> None:
    """The consumer 'ledger' processed two messages and skipped one redelivery (the inbox library's path)."""
    inbox = InboxTable("ledger")
    with engine.begin() as conn:
        for offset, mid in enumerate(message_ids):
            assert inbox.record_receipt(conn, mid, "t", 0, offset)
            inbox.record_result(conn, mid, "SUCCESS", None)
        assert not inbox.record_receipt(conn, message_ids[0], "t", 0, 9)
        inbox.record_duplicate(conn, message_ids[0])


@pytest.mark.slow
def test_an_operator_finds_rows_replays_all_that_match_and_follows_the_run(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("operate")
    create_topics(topic, f"{topic}.results")
    services = service_folder(
        tmp_path,
        "billing",
        f"topic: {topic}\nschedule: null\nconfirm_schedule: null\nretention: null\n"
        f"confirmation: {{topic: {topic}.results}}\ninboxes: [{{consumer: ledger}}]\n",
    )
    a1, a2, b, sent, new = insert_rows(db_engine, topic, ["a", "a", "b", "s", "n"])
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET status = 'FAILED', attempts = 5, last_error = 'schema v2', "
                          "next_attempt_at = NOW(6) + INTERVAL 1 HOUR WHERE aggregate_id IN ('a', 'b')"))  # fmt: skip
        conn.execute(text("UPDATE outbox_message SET status = 'SENT', sent_at = NOW(6) WHERE message_id = :m"),
                     {"m": sent})  # fmt: skip
    _consumer_inbox(db_engine, [sent, new])
    with db_engine.begin() as conn:  # a message its writer scheduled an hour ahead
        (scheduled,) = write_outbox(
            conn, OutboxMessage(topic, "z", "Reminder", {}, not_before=timedelta(hours=1))
        )
    env = {"OUTBOX_RELAY_SERVICES_DIR": str(services), **airflow_connections(db_engine)}
    with airflow_stack(tmp_path / "airflow", env, users={"viewer": "viewer", "admin": "admin"}) as stack:
        _the_api_answers(stack, a1, a2, scheduled)
        with browser() as page:
            log_in(page, f"{stack.url}/", "admin", "admin")
            _chart_and_search(stack, page, a1)
            run_id = _replay_all_that_match(stack, page)
            assert _statuses(db_engine, [a1, a2, b]) == ["NEW", "NEW", "FAILED"]
            assert (
                stack.api_as("viewer", "GET", f"/dags/outbox_billing_replay/dagRuns/{run_id}")["state"]
                == "success"
            )
            _inbox(stack, page)
            _scheduled_row(stack, page, scheduled)


def _the_api_answers(stack: AirflowStack, a1: str, a2: str, scheduled: str) -> None:
    page, bearer = (
        f"{stack.url}/outbox/api/services/billing",
        {"Authorization": f"Bearer {stack.token('viewer')}"},
    )
    found = httpx.get(f"{page}/search", params={"q": "a"}, headers=bearer, timeout=30).json()
    assert [r["message_id"] for r in found["key_rows"]] == [a2, a1] and found["row_message_id"] is None
    assert (
        httpx.get(f"{page}/search", params={"q": a1}, headers=bearer, timeout=30).json()["row_message_id"]
        == a1
    )
    matching = httpx.get(f"{page}/matching", params={"key": "a"}, headers=bearer, timeout=30).json()
    assert matching == {"matching": 2, "counted_up_to": 10_000}
    (inbox,) = httpx.get(f"{page}/inboxes", headers=bearer, timeout=30).json()
    assert (inbox["consumer"], inbox["processed"], inbox["duplicates_skipped"]) == ("ledger", 2, 1)
    missing = httpx.get(f"{page}/runs/replay/no-such-run", headers=bearer, timeout=30)
    assert missing.status_code == 404 and "no run 'no-such-run' of outbox_billing_replay" in missing.text
    figures = httpx.get(f"{stack.url}/outbox/api/services/billing", headers=bearer, timeout=30).json()
    assert (
        len(figures["activity"]["minutes"]) == 60 and figures["activity"]["backlog"][-1] == 2
    )  # new, scheduled
    detail = httpx.get(f"{page}/rows/{a1}", headers=bearer, timeout=30).json()
    assert (
        detail["explanation"]["state"] == "failed"
        and detail["explanation"]["facts"]["next attempt at"] is None
    )
    waiting = httpx.get(f"{page}/rows/{scheduled}", headers=bearer, timeout=30).json()["explanation"]
    assert waiting["state"] == "scheduled" and waiting["facts"]["not before"] is not None


def _chart_and_search(stack: AirflowStack, page: Any, a1: str) -> None:
    from selenium.webdriver.common.by import By

    page.get(f"{stack.url}/outbox/services/billing")
    series = {
        p.get_attribute("data-series") for p in page.find_elements(By.CSS_SELECTOR, "#activity polyline")
    }
    assert series == {"published", "confirmed", "failed", "backlog"}
    screenshot(page, "outbox-page-chart")
    page.find_element(By.ID, "search-q").send_keys(a1)
    page.find_element(By.ID, "search-button").click()
    page.find_element(By.CSS_SELECTOR, "#found-row a").click()
    assert page.find_element(By.ID, "state").text == "failed"
    facts = [th.text for th in page.find_elements(By.CSS_SELECTOR, "table th")]
    assert "status" in facts and "next attempt at" not in facts  # a FAILED row has no next attempt
    screenshot(page, "outbox-page-failed-row")
    page.get(f"{stack.url}/outbox/services/billing/search?q=a")
    keyed = page.find_elements(By.CSS_SELECTOR, "#key-rows tr")[1:]
    assert [r.find_elements(By.TAG_NAME, "td")[2].text for r in keyed] == ["FAILED", "FAILED"]
    assert "Searched the newest 100,000 rows" in page.find_element(By.ID, "scanned").text
    screenshot(page, "outbox-page-search-by-key")


def _replay_all_that_match(stack: AirflowStack, page: Any) -> str:
    """Filter to key a, check "all rows that match", trigger: the triggered page follows the run to its end."""
    from selenium.webdriver.common.by import By

    page.get(f"{stack.url}/outbox/services/billing?kind=failed&key=a")
    assert page.find_element(By.ID, "matching").text.startswith("2 rows match the filter")
    page.find_element(By.ID, "reason").send_keys("INC-11 all of key a")
    page.find_element(By.ID, "replay").click()
    assert "no rows chosen" in page.page_source  # nothing checked: refused
    page.back()
    page.find_element(By.ID, "all-matching").click()
    boxes = page.find_elements(By.CSS_SELECTOR, 'input[name="row_ids"]')
    assert len(boxes) == 2 and all(b.is_selected() and not b.is_enabled() for b in boxes)
    reason = page.find_element(By.ID, "reason")
    reason.clear()
    reason.send_keys("INC-11 all of key a")
    page.find_element(By.ID, "replay").click()
    run_id = page.find_element(By.CSS_SELECTOR, "#triggered a").text
    state = page.find_element(By.ID, "run-state")
    seen: set[str] = set()

    def ended() -> bool:
        seen.add(state.text)
        return state.text in {"success", "failed"}

    wait_until(ended, 240, f"the page never showed the run ending; it showed {seen}")
    assert state.text == "success", seen
    tasks = [r.text for r in page.find_elements(By.CSS_SELECTOR, "#run-tasks tr")]
    assert any(t.startswith("replay success") for t in tasks), tasks
    screenshot(page, "outbox-page-run-followed")
    return str(run_id)


def _inbox(stack: AirflowStack, page: Any) -> None:
    from selenium.webdriver.common.by import By

    page.get(f"{stack.url}/outbox/services/billing")
    page.find_element(By.LINK_TEXT, "ledger").click()
    assert page.find_element(By.ID, "processed").text == "2"
    assert page.find_element(By.ID, "duplicates").text == "1"
    assert len(page.find_elements(By.CSS_SELECTOR, "#inbox-rows tr")) == 3
    screenshot(page, "outbox-page-inbox")


def _scheduled_row(stack: AirflowStack, page: Any, message_id: str) -> None:
    """A row its writer scheduled: the row view says so and when, and shows no next attempt."""
    from selenium.webdriver.common.by import By

    page.get(f"{stack.url}/outbox/services/billing/rows/{message_id}")
    assert page.find_element(By.ID, "state").text == "scheduled"
    facts = [th.text for th in page.find_elements(By.CSS_SELECTOR, "table th")]
    assert "not before" in facts and "next attempt at" not in facts
    screenshot(page, "outbox-page-scheduled-row")
