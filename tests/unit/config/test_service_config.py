"""Config schema and loader: every bad input gets an error naming the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from outbox_relay.config import STANDARD_COLUMNS, ServiceConfig
from outbox_relay.config.identifiers import InvalidIdentifierError, check_table_name
from outbox_relay.config.loader import (
    SERVICES_DIR_ENV,
    ServiceFileError,
    default_services_dir,
    load_service,
    load_services,
    parse_service_config,
)
from outbox_relay.errors import MissingConfigurationError
from outbox_relay.store.naming import quote

ROOT = Path(__file__).resolve().parents[3]


def _write(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(body)
    return path


def test_standard_table_is_the_default_mapping() -> None:
    config = ServiceConfig.model_validate({"service": "orders", "topic": "orders.events"})
    assert config.columns.model_dump(exclude_none=True) == STANDARD_COLUMNS
    assert config.columns.inline_retry_state and config.table == "outbox_message"


def test_given_columns_replace_the_standard_mapping() -> None:
    config = ServiceConfig.model_validate(
        {
            "service": "coupons",
            "table": "t_user_coupon_tran",
            "topic": "coupons",
            "columns": {"id": "tid", "status": "status", "key": "uid"},
            "statuses": {"new": 0, "sent": 1, "confirmed": None, "failed": None},
            "payload": {"columns": ["uid", "coupon_money", "tid"]},
            "retention": None,
        }
    )
    assert config.columns.message_id is None and not config.columns.inline_retry_state
    assert config.statuses.new == 0


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ("topic: t\nbatch_size: 0\n", "batch_size", "greater than or equal to 1"),
        ("topic: t\nretry:\n  max_attempts: -1\n", "retry.max_attempts", "greater than or equal to 1"),
        ("topic: t\ntable: 'orders; DROP TABLE x'\n", "table", "not a valid table name"),
        (
            "topic: t\ncolumns:\n  id: 'id`'\n  status: status\n  payload: p\n",
            "columns.id",
            "not a valid column name: use letters, digits and '_'",
        ),
        ("topic: 'bad topic!'\n", "topic", "not a valid Kafka topic name"),
        ("topic: t\nschedul: '@daily'\n", "schedul", "unknown field"),
        ("topic: t\nschedule: 'every minute'\n", "schedule", "neither a cron expression"),
        ("columns: {id: id, status: s, payload: p}\nretention: null\n", "(top level)", "set 'topic'"),
        ("topic: t\nconfirmation: {}\n", "confirmation.topic", "required field is missing"),
        ("topic: t\npoll_interval_seconds: 0\n", "poll_interval_seconds", "greater than 0"),
        ("topic: t\npoll_interval_seconds: 120\n", "poll_interval_seconds", "less than or equal to 60"),
        ("topic: t\npipelining: maybe\n", "pipelining", "valid boolean"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, body: str, field: str, words: str) -> None:
    path = _write(tmp_path, "orders", body)
    with pytest.raises(ServiceFileError) as caught:
        parse_service_config(path)
    message = str(caught.value)
    assert str(path) in message and f"field '{field}'" in message and words in message


def test_unparseable_yaml_and_wrong_shapes(tmp_path: Path) -> None:
    with pytest.raises(ServiceFileError, match="invalid YAML"):
        parse_service_config(_write(tmp_path, "a", "topic: [unclosed\n"))
    with pytest.raises(ServiceFileError, match="expected a mapping"):
        parse_service_config(_write(tmp_path, "b", "- just\n- a list\n"))
    with pytest.raises(ServiceFileError, match="must equal the file name"):
        parse_service_config(_write(tmp_path, "c", "service: other\ntopic: t\n"))


def test_one_bad_file_does_not_hide_the_others(tmp_path: Path) -> None:
    _write(tmp_path, "good", "topic: good.events\n")
    _write(tmp_path, "bad", "topic: t\nbatch_size: lots\n")
    loaded = load_services(tmp_path)
    assert list(loaded.services) == ["good"]
    assert len(loaded.errors) == 1 and "bad.yaml" in str(loaded.errors[0])
    with pytest.raises(LookupError, match="no config for service 'missing'"):
        load_service("missing", tmp_path)


def test_consistency_rules() -> None:
    base = {
        "service": "s",
        "topic": "t",
        "columns": {"id": "id", "status": "st", "payload": "p"},
        "retention": None,
    }
    with pytest.raises(ValidationError, match=r"threshold_seconds needs columns\.created_at"):
        ServiceConfig.model_validate({**base, "threshold_seconds": 5})
    with pytest.raises(ValidationError, match=r"statuses\.confirmed must be set"):
        ServiceConfig.model_validate(
            {**base, "confirmation": {"topic": "r"}, "statuses": {"confirmed": None}}
        )
    with pytest.raises(ValidationError, match="mapped together"):
        ServiceConfig.model_validate({**base, "columns": {**base["columns"], "attempts": "a"}})  # type: ignore[dict-item]
    with pytest.raises(ValidationError, match="retention needs"):
        ServiceConfig.model_validate({k: v for k, v in base.items() if k != "retention"})
    with pytest.raises(ValidationError, match="must be distinct"):
        ServiceConfig.model_validate({**base, "statuses": {"new": 0, "sent": 0}})


@pytest.mark.parametrize("name", ["a`b", "x; DROP TABLE y", "a b", "", "1abc", "a" * 65, "a.b.c", "t--"])
def test_identifier_injection_is_rejected(name: str) -> None:
    with pytest.raises(InvalidIdentifierError):
        check_table_name(name)


def test_quoting() -> None:
    assert quote("db.outbox_message") == "`db`.`outbox_message`"


def test_shipped_service_configs_are_valid() -> None:
    loaded = load_services(ROOT / "dags" / "services")
    assert not loaded.errors and "orders" in loaded.services


def test_the_folder_comes_from_the_setting_and_a_missing_folder_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(SERVICES_DIR_ENV, str(ROOT / "dags" / "services"))
    assert default_services_dir() == ROOT / "dags" / "services"
    assert "orders" in load_services().services and load_service("orders").service == "orders"
    gone = tmp_path / "servcies"
    monkeypatch.setenv(SERVICES_DIR_ENV, str(gone))
    loaded = load_services()
    assert loaded.services == {}
    assert [str(e) for e in loaded.errors] == [
        f"{gone}: no such folder (the folder ${SERVICES_DIR_ENV} names): no service is loaded"
    ]
    assert "no such folder (the folder given)" in str(load_services(gone).errors[0])
    assert "no such folder (where it came from)" in str(load_services(gone, "where it came from").errors[0])


def test_without_the_setting_or_a_folder_the_core_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    """The core knows no default folder (the Airflow glue's is Airflow's DAG folder)."""
    monkeypatch.delenv(SERVICES_DIR_ENV, raising=False)
    assert default_services_dir() is None
    (error,) = load_services().errors
    assert f"not set and no folder given: set ${SERVICES_DIR_ENV}" in str(error)
    with pytest.raises(MissingConfigurationError, match=f"set \\${SERVICES_DIR_ENV} to the folder"):
        load_service("orders")


def test_the_db_time_zone_is_one_fixed_offset() -> None:
    """Backfill windows, reconciliation times and audits all convert through it."""
    from datetime import timedelta

    east = ServiceConfig.model_validate({"service": "s", "topic": "t", "db_time_zone": "+08:00"})
    west = ServiceConfig.model_validate({"service": "s", "topic": "t", "db_time_zone": "-05:30"})
    assert east.db_tzinfo.utcoffset(None) == timedelta(hours=8)
    assert west.db_tzinfo.utcoffset(None) == -timedelta(hours=5, minutes=30)
