"""The README's service files: every ```yaml block that starts with '# dags/services/<service>.yaml'.
Tests load them, so the documented recipes are the ones that are checked and run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

README = Path(__file__).resolve().parents[1] / "README.md"


def service_files() -> dict[str, dict[str, Any]]:
    """Service name -> the block's YAML document."""
    blocks = re.findall(r"```yaml\n# dags/services/(\w+)\.yaml\n(.*?)```", README.read_text(), re.S)
    return {name: yaml.safe_load(body) for name, body in blocks}
