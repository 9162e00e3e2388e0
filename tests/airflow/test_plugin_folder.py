"""Airflow imports every .py file of the plugins folder as a top-level module in every component; the
glue package must be skipped there (plugins/.airflowignore), or it is imported twice under two names."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.airflow
GLUE = ROOT / "plugins" / "outbox_relay_airflow"


def _modules_from(folder: Path) -> set[str]:
    return {
        name
        for name, module in list(sys.modules.items())
        if folder in Path(getattr(module, "__file__", None) or "/").parents
    }


def test_airflows_plugin_loader_imports_nothing_of_the_glue_package() -> None:
    from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory

    before = _modules_from(GLUE)
    _plugins, errors = _load_plugins_from_plugin_directory(str(ROOT / "plugins"))
    assert errors == {}
    imported = _modules_from(GLUE) - before
    assert not any(not name.startswith("outbox_relay_airflow") for name in imported), imported


def test_without_the_ignore_file_the_loader_would_import_it_twice(tmp_path: Path) -> None:
    """The check above can fail: a plugins folder holding the package without .airflowignore."""
    from airflow._shared.plugins_manager.plugins_manager import _load_plugins_from_plugin_directory

    copy = tmp_path / "plugins" / "outbox_relay_airflow"
    copy.mkdir(parents=True)
    (copy / "__init__.py").write_text("")
    (copy / "probe_module.py").write_text("VALUE = 1\n")
    _load_plugins_from_plugin_directory(str(tmp_path / "plugins"))
    assert "probe_module" in sys.modules  # imported as a top-level module, beside the package
    del sys.modules["probe_module"]
