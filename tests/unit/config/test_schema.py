"""The JSON Schema editors use must say what the loader says."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from outbox_relay.config.schema import service_schema, service_schema_text

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "dags" / "services" / "service.schema.json"
EXAMPLE_FILES = sorted((ROOT / "dags" / "services").glob("*.yaml")) + sorted(
    (ROOT / "include" / "outbox_examples").glob("*/services/*.yaml")
)


def test_the_committed_schema_is_the_models_schema() -> None:
    assert COMMITTED.read_text() == service_schema_text(), "run: outbox-relay schema -o " + str(COMMITTED)


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=lambda p: p.name)
def test_every_shipped_service_file_passes_the_schema(path: Path) -> None:
    jsonschema.validate(yaml.safe_load(path.read_text()), service_schema())


def test_the_schema_rejects_what_the_loader_rejects() -> None:
    with pytest.raises(jsonschema.ValidationError, match="Additional properties"):
        jsonschema.validate({"topic": "t", "bacth_size": 10}, service_schema())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"topic": "t", "batch_size": 0}, service_schema())
