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
        topic="t",
        confirmation={"topic": "t.results"},
        dead_letter_topic="t.dlq",
        slo={"max_oldest_new_seconds": 600, "max_unconfirmed_seconds": 3600},
    )
    assert _problems(db_engine, config, {"failed": 0}) == []  # empty table: healthy
    insert_rows(db_engine, "t", ["a"], age_seconds=900)  # the next row to send, waiting for 15 min
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

    from outbox_relay_airflow.tasks import relay

    (tmp_path / "billing.yaml").write_text("topic: t\n")

    class Ti:
        def __init__(self, stats: dict[str, Any]) -> None:
            self.stats = stats

        def xcom_pull(self, task_ids: str) -> dict[str, Any]:
            assert task_ids == "relay"
            return self.stats

    assert relay.run_check_health("billing", {"ti": Ti({"failed": 0})}, tmp_path)["healthy"] is True
    with pytest.raises(AirflowFailException, match=r"ServiceUnhealthyError: this run gave up on 1 row"):
        relay.run_check_health("billing", {"ti": Ti({"failed": 1})}, tmp_path)


def test_slo_needs_what_it_measures() -> None:
    with pytest.raises(ValueError, match=r"slo\.max_unconfirmed_seconds needs 'confirmation'"):
        ServiceConfig.model_validate({"service": "s", "topic": "t", "slo": {"max_unconfirmed_seconds": 60}})


def _answered(engine: Engine, confirmed: int, failed: int, gave_up: int = 0, hours_ago: float = 0) -> None:
    """Rows the consumers answered (CONFIRMED / FAILED with a confirmation time ``hours_ago``) and rows the
    relay gave up on (FAILED, never answered)."""
    ids = insert_rows(engine, "t", ["k"] * (confirmed + failed + gave_up))
    statuses = ["CONFIRMED"] * confirmed + ["FAILED"] * failed
    with engine.begin() as conn:
        for message_id, status in zip(ids, statuses, strict=False):
            conn.execute(
                text(
                    "UPDATE outbox_message SET status = :s, sent_at = NOW(6), confirmed_at = NOW(6) - INTERVAL "
                    ":secs SECOND, updated_at = NOW(6) - INTERVAL :secs SECOND WHERE message_id = :m"
                ),
                {"s": status, "m": message_id, "secs": int(hours_ago * 3600)},
            )
        for message_id in ids[confirmed + failed :]:
            conn.execute(
                text("UPDATE outbox_message SET status = 'FAILED' WHERE message_id = :m"), {"m": message_id}
            )


def _answers(engine: Engine, config: ServiceConfig) -> tuple[dict[str, int | None], list[str]]:
    check = HealthCheck(config)
    with engine.connect() as conn:
        figures = check.answer_figures(conn)
    return figures, check.answer_problems(figures)


def test_failed_answers_of_the_last_hour_breach_the_default_share(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    """The default: more than 10% of the last hour's answers FAILED (once there are 20) is a breach; rows the
    relay gave up on are not answers, and answers older than an hour do not count."""
    config = service_config(topic="t", confirmation={"topic": "t.results"})
    _answered(db_engine, confirmed=18, failed=2, gave_up=5)
    _answered(db_engine, confirmed=0, failed=30, hours_ago=2)
    figures, problems = _answers(db_engine, config)
    assert (
        figures == {"failed_answers_last_hour": 2, "answers_last_hour": 20} and problems == []
    )  # 10%: within
    _answered(db_engine, confirmed=0, failed=1)
    figures, problems = _answers(db_engine, config)
    assert figures == {"failed_answers_last_hour": 3, "answers_last_hour": 21}
    (problem,) = problems
    assert problem.startswith(
        "SLO breached: consumers answered FAILED for 3 of the 21 rows of outbox_message"
    )
    assert "(14%), more than 10%" in problem and "outbox-relay replay" in problem


def test_a_limit_per_hour_and_too_few_answers_for_a_share(
    db_engine: Engine, service_config: Callable[..., ServiceConfig]
) -> None:
    config = service_config(
        topic="t", confirmation={"topic": "t.results"}, slo={"max_failed_answers_per_hour": 2}
    )
    _answered(db_engine, confirmed=0, failed=3)  # 100% of 3 answers: too few for a share, over the limit of 2
    figures, problems = _answers(db_engine, config)
    assert figures == {"failed_answers_last_hour": 3, "answers_last_hour": 3}
    assert problems == [problems[0]] and "more than 2; see the FAILED rows" in problems[0]
    off = service_config(
        topic="t", confirmation={"topic": "t.results"}, slo={"max_failed_answer_share": None}
    )
    assert _answers(db_engine, off)[1] == []
    without = service_config(topic="t")  # no confirmations: no answers to count
    assert _answers(db_engine, without)[0] == {"failed_answers_last_hour": None, "answers_last_hour": None}


@pytest.mark.airflow
@pytest.mark.usefixtures("airflow_connections_env")
def test_the_confirmations_check_turns_the_run_red_without_retry(db_engine: Engine, tmp_path: Path) -> None:
    from outbox_relay_airflow.compat import AirflowFailException
    from outbox_relay_airflow.tasks import confirmations

    (tmp_path / "billing.yaml").write_text("topic: t\nconfirmation: {topic: t.results}\n")
    _answered(db_engine, confirmed=19, failed=1)
    assert confirmations.run_check_answers("billing", {}, tmp_path)["figures"]["answers_last_hour"] == 20
    _answered(db_engine, confirmed=0, failed=10)
    with pytest.raises(
        AirflowFailException, match=r"ServiceUnhealthyError: SLO breached: consumers answered FAILED for 11"
    ):
        confirmations.run_check_answers("billing", {}, tmp_path)
