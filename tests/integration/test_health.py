"""check_health against the real MariaDB: rows given up on and SLO breaches are named; a healthy service
and a service without SLO pass; the Airflow task fails without retry on a problem."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text

from outbox_relay.config import ServiceConfig
from outbox_relay.config.table import STANDARD_COLUMNS
from outbox_relay.health import HealthCheck
from tests.integration.outbox_rows import insert_rows

pytestmark = pytest.mark.integration


def _problems(engine: Engine, config: ServiceConfig, stats: dict[str, Any]) -> list[str]:
    check = HealthCheck(config)
    with engine.connect() as conn:
        return check.problems(stats, check.figures(conn))


def _figures(engine: Engine, config: ServiceConfig) -> dict[str, int | None]:
    with engine.connect() as conn:
        return HealthCheck(config).figures(conn)


def test_given_up_rows_and_slo_breaches_are_named(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    config = service_config(
        topic="t", confirmation={"topic": "t.results"}, dead_letter_topic="t.dlq",
        slo={"max_oldest_new_seconds": 600, "max_unconfirmed_seconds": 3600},
    )  # fmt: skip
    assert _problems(db_engine, config, {"failed": 0}) == []  # empty table: healthy
    (old,) = insert_rows(db_engine, "t", ["a"], age_seconds=900)
    (sent,) = insert_rows(db_engine, "t", ["b"], age_seconds=7200)
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET status = 'SENT' WHERE message_id = :m"), {"m": sent})
    problems = _problems(db_engine, config, {"failed": 2})
    assert len(problems) == 3, problems
    assert (
        "gave up on 2 row(s)" in problems[0]
        and "t.dlq" in problems[0]
        and "outbox-relay replay" in problems[0]
    )
    assert "next row to send has waited 9" in problems[1] and "more than 600s" in problems[1]
    assert "oldest unconfirmed row was created 7" in problems[2] and "more than 3600s" in problems[2]
    figures = _figures(db_engine, config)
    assert figures["backlog"] == 1 and figures["unconfirmed"] == 1
    assert (
        890
        <= (figures["oldest_new_age_seconds"] or 0)
        < 7200
        <= (figures["oldest_unconfirmed_age_seconds"] or 0)
    )
    lenient = service_config(topic="t", slo={"fail_on_given_up_rows": False})
    assert _problems(db_engine, lenient, {"failed": 2}) == []
    assert old


def test_figures_without_confirmations_or_creation_time(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    config = service_config(topic="t")
    assert _figures(db_engine, config) == {"backlog": 0, "oldest_new_age_seconds": 0}  # nothing waits
    insert_rows(db_engine, "t", ["a", "b"], age_seconds=120)
    figures = _figures(db_engine, config)
    assert figures["backlog"] == 2 and 115 <= (figures["oldest_new_age_seconds"] or 0) < 600
    no_age = service_config(topic="t", columns={**STANDARD_COLUMNS, "created_at": None})
    assert _figures(db_engine, no_age) == {"backlog": 2, "oldest_new_age_seconds": None}


@pytest.mark.airflow
@pytest.mark.usefixtures("airflow_connections_env")
def test_the_task_fails_without_retry_naming_the_problem(db_engine: Engine, tmp_path: Path) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from outbox_relay_airflow import tasks

    (tmp_path / "billing.yaml").write_text("topic: t\n")

    class Ti:
        def __init__(self, stats: dict[str, Any]) -> None:
            self.stats = stats

        def xcom_pull(self, task_ids: str) -> dict[str, Any]:
            assert task_ids == "relay"
            return self.stats

    assert tasks.run_check_health("billing", {"ti": Ti({"failed": 0})}, tmp_path)["healthy"] is True
    with pytest.raises(AirflowFailException, match=r"ServiceUnhealthyError: this run gave up on 1 row"):
        tasks.run_check_health("billing", {"ti": Ti({"failed": 1})}, tmp_path)


def test_slo_needs_what_it_measures() -> None:
    with pytest.raises(ValueError, match=r"slo\.max_unconfirmed_seconds needs 'confirmation'"):
        ServiceConfig.model_validate({"service": "s", "topic": "t", "slo": {"max_unconfirmed_seconds": 60}})
