"""Scenario 11: bad service configs, fuzzed (hypothesis). Whatever a YAML file holds, loading it gives
either a valid config or a ServiceFileError naming the file and the field, never a traceback from deep
inside; and a bad file never stops the other services' DAGs from being built."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outbox_relay.config.loader import ServiceFileError, load_services, parse_service_config

BASE: dict[str, Any] = {
    "service": "fuzzed",
    "topic": "fuzzed.events",
    "dead_letter_topic": "fuzzed.dlq",
    "batch_size": 100,
    "retry": {"max_attempts": 3, "backoff_seconds": 5},
    "confirmation": {"topic": "fuzzed.results"},
    "retention": {"days": 7},
    "kafka": {"delivery_timeout_ms": 5000, "flush_timeout_seconds": 6},
}
PATHS: list[tuple[str, ...]] = [
    ("service",), ("table",), ("topic",), ("topics",), ("dead_letter_topic",), ("batch_size",),
    ("threshold_seconds",), ("time_budget_seconds",), ("poll_interval_seconds",), ("schedule",),
    ("db_time_zone",), ("relay_lock_wait_seconds",), ("retry",), ("retry", "max_attempts"),
    ("retry", "backoff_seconds"), ("confirmation",), ("confirmation", "topic"), ("confirmation", "partitions"),
    ("retention",), ("retention", "days"), ("kafka",), ("kafka", "delivery_timeout_ms"),
    ("kafka", "flush_timeout_seconds"), ("columns",), ("columns", "id"), ("columns", "key"),
    ("columns", "attempts"), ("statuses",), ("statuses", "new"), ("statuses", "failed"), ("payload",),
    ("payload", "format"), ("payload", "columns"), ("connections", "db"), ("colums",), ("retry", "max_atempts"),
]  # fmt: skip
# Scalars YAML turns into surprises: bad dates, forced tags, aliases, huge and odd numbers.
YAML_SNIPPETS = [
    "2001-13-01", "!!int abc", "!!float x", "&a [*a]", "!!binary xyz", "!!python/name:os.system", "{",
    "[1, [2, [3]]]", "~", "0x1F", "1e400", ".nan", "-.inf", "'''", "*nope", "!!set {a, b}", "2024-01-01 25:00",
    "yes", "0o17", "\"\\x\"", "{a: 1, a: 2}",
]  # fmt: skip

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**15), 10**15),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=40),
    st.lists(st.text(max_size=8), max_size=3),
    st.dictionaries(st.text(max_size=8), st.integers(), max_size=2),
)


def _mutate(document: dict[str, Any], path: Sequence[str], value: Any) -> None:
    node = document
    for part in path[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[path[-1]] = value


def _assert_names_file_and_field(error: ServiceFileError, path: Path) -> None:
    message = str(error)
    assert message.startswith(f"{path}: "), message
    assert error.problems, message
    for problem in error.problems:
        assert problem.startswith(("field '", "invalid YAML", "cannot read file", "expected a mapping")), (
            problem
        )
        assert "Traceback" not in problem and 'File "' not in problem, problem
        if "invalid YAML value" in problem:  # YAML built the document, but not this field's value
            assert problem.startswith("field '"), problem


def _fuzzed(mutations: list[tuple[Any, Any]]) -> str:
    """The base config with each (path, value) mutation applied, as YAML."""
    document = yaml.safe_load(yaml.safe_dump(BASE))
    for path, value in mutations:
        _mutate(document, path, value)
    return yaml.safe_dump(document, allow_unicode=True)


def _load(folder: Path, text: str) -> None:
    """The fuzzed file next to a valid one: the valid service must always load, the fuzzed one either
    loads or is reported with file and field; nothing else may escape."""
    path = folder / "fuzzed.yaml"
    path.write_text(text, encoding="utf-8")
    (folder / "good.yaml").write_text(yaml.safe_dump({"topic": "good.events"}))
    try:
        parse_service_config(path)
    except ServiceFileError as error:
        _assert_names_file_and_field(error, path)
    loaded = load_services(folder)
    assert "good" in loaded.services and len(loaded.services) + len(loaded.errors) == 2


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=3))
def test_fuzzed_fields_give_a_config_error_naming_file_and_field(mutations: list[tuple[Any, Any]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _load(Path(tmp), _fuzzed(mutations))


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(PATHS), st.sampled_from(YAML_SNIPPETS))
def test_yaml_surprises_give_a_config_error_naming_file_and_field(
    path: tuple[str, ...], snippet: str
) -> None:
    lines = yaml.safe_dump({k: v for k, v in BASE.items() if k != path[0]}).splitlines()
    if len(path) == 1:
        lines.append(f"{path[0]}: {snippet}")
    else:
        lines += [f"{path[0]}:", f"  {path[1]}: {snippet}"]
    with tempfile.TemporaryDirectory() as tmp:
        _load(Path(tmp), "\n".join(lines) + "\n")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_arbitrary_text_gives_a_config_error_naming_the_file(text: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        _load(Path(tmp), text)


@pytest.mark.airflow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(PATHS), values), min_size=1, max_size=2))
def test_a_fuzzed_config_never_takes_the_other_services_dags_down(mutations: list[tuple[Any, Any]]) -> None:
    from outbox_relay_airflow.config_errors import InvalidServiceFilesError, raise_config_errors
    from outbox_relay_airflow.dag_factory import build_all

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "fuzzed.yaml").write_text(_fuzzed(mutations))
        (folder / "good.yaml").write_text(yaml.safe_dump({"topic": "good.events"}))
        dags, errors = build_all(folder)
        assert "outbox_good_relay" in dags
        if errors:
            with pytest.raises(InvalidServiceFilesError, match=r"fuzzed\.yaml"):
                raise_config_errors(folder)
        else:
            assert "outbox_fuzzed_relay" in dags
            raise_config_errors(folder)


def test_a_value_yaml_cannot_build_is_reported_with_its_field(tmp_path: Path) -> None:
    """Found by the fuzzing above: safe_load raises a bare ValueError for these, which used to escape
    load_services and fail the import of every service's DAGs."""
    path = tmp_path / "orders.yaml"
    path.write_text("topic: orders.events\nretry:\n  max_attempts: !!int abc\nschedule: 2001-13-01\n")
    with pytest.raises(ServiceFileError) as error:
        parse_service_config(path)
    assert str(error.value).startswith(f"{path}: field 'retry.max_attempts': invalid YAML value")
    assert load_services(tmp_path).errors[0].path == path  # reported, not raised
