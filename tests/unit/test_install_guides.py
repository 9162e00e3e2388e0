"""The README's install guides stay true to the package: the Helm values point at the image the custom-image
section builds and name the setting the glue reads, the managed-service line names this version's wheel,
and the pip section's one-line DAG file is what `outbox-relay init` writes."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

from outbox_relay.config.loader import SERVICES_DIR_ENV

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
SECTION = README[README.index("## Install into your Airflow") : README.index("\n## Documentation")]


def _blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", SECTION, re.S)


def test_the_helm_values_use_the_custom_image_and_the_services_setting() -> None:
    (values,) = [yaml.safe_load(b) for b in _blocks("yaml")]
    image = values["images"]["airflow"]
    built = re.findall(r"docker build -t (\S+) \.", SECTION)
    assert f"{image['repository']}:{image['tag']}" == built[0]
    assert {"name": SERVICES_DIR_ENV, "value": "/opt/airflow/outbox_services"} in values["env"]
    assert "COPY services/ /opt/airflow/outbox_services/" in SECTION
    assert values["config"]["core"]["test_connection"] == "Enabled"
    assert values["dags"]["gitSync"]["enabled"] is True


def test_the_managed_service_line_names_this_versions_wheel() -> None:
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    (line,) = [b.strip() for b in _blocks("text")]
    assert line.startswith("airflow-outbox-relay @ file://")
    assert line.endswith(f"/airflow_outbox_relay-{version}-py3-none-any.whl")


def test_the_one_line_dag_file_is_the_one_init_writes() -> None:
    one_line = (
        "from outbox_relay_airflow.dag_factory import register_outbox_dags; register_outbox_dags(globals())"
    )
    assert one_line in SECTION
    template = (ROOT / "plugins/outbox_relay_airflow/scaffold/templates/outbox_services.py").read_text()
    assert "from outbox_relay_airflow.dag_factory import register_outbox_dags" in template
    assert "register_outbox_dags(globals()" in template
