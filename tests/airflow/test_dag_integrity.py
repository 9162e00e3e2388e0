"""DAG integrity: every generated DAG imports cleanly with the hygiene operators rely on, and a bad
service config breaks only its own DAGs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.airflow


def _dagbag(dags_folder: Path) -> object:
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(dags_folder))


@pytest.fixture
def services_dir(tmp_path: Path) -> Iterator[Path]:
    folder = tmp_path / "services"
    shutil.copytree(ROOT / "dags" / "services", folder)
    previous = os.environ.get("OUTBOX_RELAY_SERVICES_DIR")
    os.environ["OUTBOX_RELAY_SERVICES_DIR"] = str(folder)
    yield folder
    if previous is None:
        del os.environ["OUTBOX_RELAY_SERVICES_DIR"]
    else:
        os.environ["OUTBOX_RELAY_SERVICES_DIR"] = previous


def test_every_generated_dag_imports_with_tags_retries_and_one_active_run(services_dir: Path) -> None:
    bag = _dagbag(ROOT / "dags")
    assert bag.import_errors == {}  # type: ignore[attr-defined]
    dags = bag.dags  # type: ignore[attr-defined]
    assert {"outbox_orders_relay", "outbox_orders_confirmations", "outbox_orders_cleanup"} <= set(dags)
    for dag_id, dag in dags.items():
        assert dag.tags and "outbox" in dag.tags, dag_id
        assert dag.max_active_runs == 1, dag_id
        assert dag.doc_md, dag_id
        for t in dag.tasks:
            if t.task_id == "check_health":  # a verdict on committed work: retrying it changes nothing
                assert t.retries == 0, dag_id
                continue
            assert t.retries >= 1 and t.retry_exponential_backoff, (dag_id, t.task_id)
            if dag_id.startswith("outbox_orders_"):
                assert t.owner == "orders-team"
    relay = dags["outbox_orders_relay"]
    assert [t.task_id for t in relay.topological_sort()] == ["ensure_topics", "relay", "check_health"]
    assert relay.params.get_param("republish").description
    replay = dags["outbox_orders_replay"]
    assert replay.schedule is None or str(replay.timetable.summary) in {"None", "Never"}  # manual only
    order = [t.task_id for t in replay.topological_sort()]
    assert order[:2] == ["plan", "needs_approval"] and order.index("approve") < order.index("replay")
    assert replay.params.get_param("reason").schema["minLength"] == 1
    backfill = dags["outbox_orders_backfill"]  # manual; one run per window, whatever the relay's schedule
    assert backfill.schedule is None or str(backfill.timetable.summary) in {"None", "Never"}
    assert [t.task_id for t in backfill.tasks] == ["backfill"]
    assert {"since", "until", "reason", "republish", "max_rows_per_second", "dry_run"} <= set(backfill.params)
    assert "time_budget_seconds" not in backfill.params and "time_budget_seconds" in relay.params


def _modules_after_importing(module: str) -> set[str]:
    """What a fresh interpreter holds after importing ``module`` (as a DAG processor's parse process)."""
    code = f"import json, sys; import {module}; print(json.dumps(sorted(sys.modules)))"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "include"), str(ROOT / "plugins")])}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return set(json.loads(done.stdout.splitlines()[-1]))


def test_dag_files_import_no_task_code_at_parse_time() -> None:
    """The DAG processor imports each DAG file in a new process on every re-parse (every 30 s by default):
    task code (relay engine, hooks, Kafka client) loads only when a task runs."""
    task_code = {
        "outbox_relay_airflow.tasks.relay",
        "outbox_relay_airflow.tasks.backfill",
        "outbox_relay_airflow.tasks.replay",
        "outbox_relay_airflow.operations",
        "outbox_relay_airflow.hooks",
        "outbox_relay.relay.engine",
        "outbox_relay.store.outbox",
        "confluent_kafka",
    }
    assert _modules_after_importing("outbox_relay_airflow.dag_factory") & task_code == set()
    loaded = _modules_after_importing("outbox_relay_airflow.config_errors")
    assert {m for m in loaded if m.startswith("outbox_relay_airflow")} == {
        "outbox_relay_airflow",
        "outbox_relay_airflow.config_errors",
        "outbox_relay_airflow.services_folder",
    }
    assert "airflow.sdk" not in loaded and "confluent_kafka" not in loaded


def test_every_param_is_read_as_draft_7_and_still_refuses_bad_values(services_dir: Path) -> None:
    """Draft 7 makes re-parsing cheaper (Airflow checks each Param's schema on every resolve); the trigger
    form's checks must stay the same, serialized DAGs included."""
    from airflow.exceptions import ParamValidationError
    from airflow.sdk.definitions.param import ParamValidationError as SdkParamValidationError
    from airflow.serialization.serialized_objects import DagSerialization
    from jsonschema import Draft7Validator

    from outbox_relay_airflow.params import PARAM_SCHEMA_DRAFT

    dags = _dagbag(ROOT / "dags").dags  # type: ignore[attr-defined]
    params = [
        (dag_id, name, dag.params.get_param(name)) for dag_id, dag in dags.items() for name in dag.params
    ]
    assert len(params) > 20
    for dag_id, name, param in params:
        assert param.schema["$schema"] == PARAM_SCHEMA_DRAFT, (dag_id, name)
        Draft7Validator.check_schema(param.schema)
    # What the api-server checks a triggered run's conf against: the serialized DAG's params.
    stored = DagSerialization.from_dict(DagSerialization.to_dict(dags["outbox_orders_backfill"])).params
    window = {"since": "2026-11-20T06:00", "until": "2026-11-20T12:00", "reason": "INC-9"}
    assert stored.deep_merge(window).validate()["chunk_seconds"] == 20
    for name, bad in [("reason", ""), ("max_rows_per_second", 0), ("chunk_seconds", 0.5), ("dry_run", "no")]:
        with pytest.raises(ParamValidationError, match=f"param {name}"):
            stored.deep_merge({**window, name: bad}).validate()
    replay = dags["outbox_orders_replay"].params
    with pytest.raises(SdkParamValidationError):
        replay.get_param("statuses").resolve(["failed", "everything"])
    with pytest.raises(SdkParamValidationError):
        replay.get_param("max_rows").resolve(1.5)


def test_no_task_keeps_a_copy_of_its_dags_params_yet_every_task_run_reads_them(services_dir: Path) -> None:
    """Serializing a copy of the DAG's params per task was most of the cost of every re-parse; the task
    runner merges the DAG's params (and the run's conf) into each task's context, which must hold."""
    from airflow.sdk.definitions.param import process_params
    from airflow.serialization.serialized_objects import OperatorSerialization

    dags = _dagbag(ROOT / "dags").dags  # type: ignore[attr-defined]
    for dag_id, dag in dags.items():
        for t in dag.tasks:
            assert not t.params, (dag_id, t.task_id, list(t.params))
            assert "params" not in OperatorSerialization.serialize_operator(t), (dag_id, t.task_id)
    replay = dags["outbox_orders_replay"]
    conf = {"reason": "INC-9", "statuses": ["failed"], "row_ids": "7"}
    for task_id in ("plan", "replay"):
        seen = process_params(replay, replay.get_task(task_id), conf, suppress_exception=False)
        assert seen == {**seen, **conf} and seen["max_rows"] == 1000 and seen["dry_run"] is False
    relay = dags["outbox_orders_relay"]
    seen = process_params(relay, relay.get_task("relay"), None, suppress_exception=False)
    assert seen == {"republish": False, "time_budget_seconds": None}


def test_a_bad_config_is_an_import_error_naming_file_and_field_and_others_still_load(
    services_dir: Path,
) -> None:
    (services_dir / "payments.yaml").write_text("topic: pay.events\nbatch_size: -3\n")
    (services_dir / "coupons.yaml").write_text("topic: coupons.events\n")
    bag = _dagbag(ROOT / "dags")
    errors = bag.import_errors  # type: ignore[attr-defined]
    assert list(errors) == [str(ROOT / "dags" / "outbox_service_config_errors.py")]
    message = next(iter(errors.values()))
    assert "payments.yaml" in message and "field 'batch_size'" in message
    dags = bag.dags  # type: ignore[attr-defined]
    assert "outbox_coupons_relay" in dags and "outbox_orders_relay" in dags
    assert not any(d.startswith("outbox_payments") for d in dags)


def test_backfill_runs_get_their_data_interval_as_window() -> None:
    from outbox_relay.config import ServiceConfig
    from outbox_relay_airflow.tasks.relay import window_for

    config = ServiceConfig.model_validate({"service": "s", "topic": "t", "db_time_zone": "+02:00"})
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 1, 6, tzinfo=UTC)
    backfill = {
        "dag_run": SimpleNamespace(run_type="backfill"),
        "data_interval_start": start,
        "data_interval_end": end,
    }
    window = window_for(backfill, config)
    assert (
        window is not None
        and window.start == datetime(2026, 1, 1, 2)
        and window.end == datetime(2026, 1, 1, 8)
    )
    scheduled = {**backfill, "dag_run": SimpleNamespace(run_type="scheduled")}
    assert window_for(scheduled, config) is None


def test_a_low_latency_service_gets_a_continuous_relay_dag(services_dir: Path) -> None:
    (services_dir / "fastlane.yaml").write_text(
        'topic: fast.events\nschedule: "@continuous"\npoll_interval_seconds: 0.2\ntime_budget_seconds: 600\n'
    )
    bag = _dagbag(ROOT / "dags")
    assert bag.import_errors == {}  # type: ignore[attr-defined]
    relay = bag.dags["outbox_fastlane_relay"]  # type: ignore[attr-defined]
    assert type(relay.timetable).__name__ == "ContinuousTimetable"
    assert relay.max_active_runs == 1  # Airflow requires it for @continuous; a run polls until its budget
