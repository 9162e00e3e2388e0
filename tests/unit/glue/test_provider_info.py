"""What Airflow's providers manager reads from the package: valid against Airflow's own schema, named after
the distribution, and one form for the outbox database on every supported Airflow (3.2+ reads it from
here, 3.1 from the hook)."""

from __future__ import annotations

import json
import sys
import types
from importlib.metadata import entry_points, version
from pathlib import Path

import jsonschema
import pytest

import airflow
from outbox_relay_airflow.hooks import OutboxDatabaseHook
from outbox_relay_airflow.provider_info import DATABASE_EXTRA_FIELDS, get_provider_info


def test_the_provider_info_is_valid_for_airflow_and_names_the_installed_distribution() -> None:
    info = get_provider_info()
    schema = json.loads((Path(airflow.__file__).parent / "provider_info.schema.json").read_text())
    jsonschema.validate(info, schema)
    assert info["package-name"] == "airflow-outbox-relay"
    assert info["versions"] == [version("airflow-outbox-relay")]
    (found,) = [
        e for e in entry_points(group="apache_airflow_provider") if e.value.startswith("outbox_relay")
    ]
    assert found.load() is get_provider_info


def test_the_connection_type_is_the_hooks_with_its_fields() -> None:
    (conn,) = get_provider_info()["connection-types"]
    assert conn["connection-type"] == OutboxDatabaseHook.conn_type == "outbox"
    module, _, name = conn["hook-class-name"].rpartition(".")
    assert (module, name) == (OutboxDatabaseHook.__module__, OutboxDatabaseHook.__name__)
    assert set(conn["conn-fields"]) == {name for name, *_ in DATABASE_EXTRA_FIELDS}
    assert conn["conn-fields"]["charset"]["schema"] == {"type": ["string", "null"], "default": "utf8mb4"}
    assert conn["conn-fields"]["ssl_verify_cert"]["schema"] == {"type": ["boolean", "null"]}
    assert conn["ui-field-behaviour"]["relabeling"] == {"schema": "Database"}


class _Field:
    def __init__(
        self, label: str, widget: object = None, description: str = "", default: object = None
    ) -> None:
        self.label, self.description, self.default = label, description, default


def test_airflow_3_1s_form_from_the_hook_has_the_same_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    """Airflow 3.1 calls the hook with the FAB provider's UI libraries (or its own stand-ins for them); the
    tests/compat fab31 cell shows the real form, this checks the fields without those libraries."""
    fakes = {
        "wtforms": {
            "StringField": type("StringField", (_Field,), {}),
            "BooleanField": type("BooleanField", (_Field,), {}),
        },
        "flask_appbuilder": {},
        "flask_appbuilder.fieldwidgets": {"BS3TextFieldWidget": object},
        "flask_babel": {"lazy_gettext": str},
    }
    for name, attributes in fakes.items():
        module = types.ModuleType(name)
        module.__dict__.update(attributes)
        monkeypatch.setitem(sys.modules, name, module)
    widgets = OutboxDatabaseHook.get_connection_form_widgets()
    assert list(widgets) == [name for name, *_ in DATABASE_EXTRA_FIELDS]
    assert type(widgets["ssl_verify_cert"]).__name__ == "BooleanField"
    assert (widgets["charset"].label, widgets["charset"].default) == ("Charset", "utf8mb4")
    behaviour = OutboxDatabaseHook.get_ui_field_behaviour()
    assert behaviour["relabeling"] == {"schema": "Database"} and behaviour["hidden_fields"] == ["extra"]


def test_the_plugin_comes_from_the_entry_point() -> None:
    from outbox_relay_airflow.outbox_page.plugin import OutboxPlugin

    (found,) = [e for e in entry_points(group="airflow.plugins") if e.name == "outbox_relay"]
    assert found.load() is OutboxPlugin
