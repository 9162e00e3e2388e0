"""`python -m outbox_relay_airflow.cli reconcile` against the live DB: report, --redeliver, argument errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from outbox_examples import EXAMPLES_SQL_DIR
from outbox_relay.store.ddl import apply_ddl
from tests.airflow.test_cli import _cli
from tests.conftest import ROOT

pytestmark = [pytest.mark.airflow, pytest.mark.integration]

EXAMPLE_SERVICES = ROOT / "include" / "outbox_examples" / "generic_message" / "services"


@pytest.fixture
def services(tmp_path: Path) -> Path:
    folder = tmp_path / "services"
    shutil.copytree(EXAMPLE_SERVICES, folder)
    (folder / "plain.yaml").write_text("topic: plain.events\n")  # a service without reconciliation
    return folder


def _seed(engine: Engine) -> None:
    apply_ddl(engine, EXAMPLES_SQL_DIR / "generic_message.sql")
    with engine.begin() as conn:
        for mid, status in [("m-missing", 1), ("m-unmarked", 0), ("m-failed", 1), ("m-ok", 1), ("m-new", 0)]:
            conn.execute(
                text(
                    "INSERT INTO message_send (message_id, business_id, service_name, topic, body, status, "
                    "sent_at) VALUES (:m, :m, 'billing', 'billing.invoices', '{}', :s, NOW(6) - INTERVAL 1 HOUR)"
                ),
                {"m": mid, "s": status},
            )
        for mid, status, error in [("m-unmarked", 1, None), ("m-failed", 2, "boom"), ("m-ok", 1, None)]:
            conn.execute(
                text(
                    "INSERT INTO message_consume (message_id, topic, kafka_partition, kafka_offset, status, "
                    "error_text, service_name) VALUES (:m, 'billing.invoices', 0, 0, :s, :e, 'ledger')"
                ),
                {"m": mid, "s": status, "e": error},
            )


def test_reconcile_reports_redelivers_and_then_is_clean(db_engine: Engine, services: Path) -> None:
    _seed(db_engine)
    url = db_engine.url.render_as_string(hide_password=False)

    first = _cli(["reconcile", "billing", "--json"], url, services)
    assert first.returncode == 1, first.stdout + first.stderr
    report = json.loads(first.stdout)
    assert report["counts"] == {
        "sent_not_consumed": 1,
        "consumed_not_marked_sent": 1,
        "consumer_failed": 1,
        "producer_failed": 0,
    }
    assert report["listed"]["sent_not_consumed"][0]["message_id"] == "m-missing"
    assert report["listed"]["consumer_failed"][0]["error"] == "boom"
    assert report["checked"] == 5 and report["unsent"] == 1 and report["missing"] == 2

    fixed = _cli(["reconcile", "billing", "--redeliver"], url, services)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert "redelivered 1, marked sent 1" in fixed.stdout
    assert "sent_not_consumed: " in fixed.stdout and '"m-missing"' in fixed.stdout
    with db_engine.connect() as conn:
        states = dict(conn.execute(text("SELECT message_id, status FROM message_send")).all())
    assert states["m-missing"] == 0 and states["m-unmarked"] == 1  # resent by the relay / repaired

    again = _cli(["reconcile", "billing", "--json"], url, services)
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads(again.stdout)["missing"] == 0

    shipping = _cli(
        ["reconcile", "shipping", "--since", "2020-01-01", "--until", "2020-01-02"], url, services
    )
    assert shipping.returncode == 0 and "checked 0" in shipping.stdout


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ["reconcile", "billing", "--since", "yesterday"],
            "reconcile --since: 'yesterday' is not an ISO date",
        ),
        (
            ["reconcile", "billing", "--since", "2026-01-02", "--until", "2026-01-01"],
            "must be before --until",
        ),
        (["reconcile", "billing", "--include-failed"], "--include-failed only makes sense with --redeliver"),
        (["reconcile"], "the following arguments are required: service"),
        (["reconcile", "nosuch"], "no config for service 'nosuch'"),
        (["reconcile", "plain"], "service 'plain' has no 'reconciliation' section"),
    ],
)
def test_reconcile_argument_errors_are_clear(
    db_engine: Engine, services: Path, args: list[str], words: str
) -> None:
    done = _cli(args, db_engine.url.render_as_string(hide_password=False), services)
    assert done.returncode == 2, done.stdout + done.stderr
    assert words in done.stderr


def test_reconcile_task_fails_on_missing_messages_or_warns_when_configured(
    db_engine: Engine, services: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.sdk.exceptions import AirflowFailException

    from outbox_relay_airflow.tasks import failures
    from outbox_relay_airflow.tasks import reconcile as tasks

    _seed(db_engine)
    url = db_engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("AIRFLOW_CONN_OUTBOX_DB", url.replace("mysql+pymysql://", "mysql://"))
    monkeypatch.setenv("OUTBOX_RELAY_SERVICES_DIR", str(services))
    manual = {"params": {"since": None, "until": None}, "dag_run": None}
    with pytest.raises(AirflowFailException, match="sent_not_consumed 1") as failed:
        tasks.run_reconciliation("billing", manual)  # a discrepancy fails the task without retries
    assert isinstance(failed.value.__cause__, failures.ReconciliationDiscrepancyError)
    assert "outbox-relay reconcile billing --since" in str(failed.value)

    billing = (services / "billing.yaml").read_text().replace("on_discrepancy: fail", "on_discrepancy: warn")
    (services / "billing.yaml").write_text(billing)
    assert tasks.run_reconciliation("billing", manual)["counts"]["sent_not_consumed"] == 1

    bad = {"params": {"since": "last tuesday"}}
    with pytest.raises(AirflowFailException, match="param 'since': 'last tuesday' is not an ISO date/time"):
        tasks.run_reconciliation("billing", bad)


def test_services_with_reconciliation_get_a_daily_reconcile_dag(services: Path) -> None:
    from outbox_relay_airflow.dag_factory import build_all

    dags, errors = build_all(services)
    assert errors == []
    assert {"outbox_billing_reconcile", "outbox_shipping_reconcile"} <= set(dags)
    assert "outbox_plain_reconcile" not in dags
    dag = dags["outbox_billing_reconcile"]
    assert [t.task_id for t in dag.tasks] == ["reconcile"] and dag.tasks[0].owner == "billing-team"
    assert dag.timetable.expression == "0 0 * * *" and dag.max_active_runs == 1
    assert {"since", "until", "redeliver", "include_failed"} <= set(dag.params.keys())
    assert dag.params.get_param("redeliver").value is False
