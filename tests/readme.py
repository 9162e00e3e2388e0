"""The documented service files: every ```yaml block of the README and docs/*.md that starts with
'# dags/services/<service>.yaml'. Tests load them, so the documented recipes are the ones that are checked
and run."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCUMENTS = (ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")))


def service_files() -> dict[str, dict[str, Any]]:
    """Service name -> the block's YAML document."""
    text = "".join(doc.read_text() for doc in DOCUMENTS)
    blocks = re.findall(r"```yaml\n# dags/services/(\w+)\.yaml\n(.*?)```", text, re.S)
    return {name: yaml.safe_load(body) for name, body in blocks}
