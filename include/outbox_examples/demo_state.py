"""What one demo step hands to the next (start time, figures only a step knows): a small JSON file."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any


class DemoState:
    def __init__(self, scenario: str) -> None:
        self.path = Path(os.environ.get("DEMO_STATE", f".run/demo-state-{scenario}.json"))

    def start(self, **values: Any) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps({"started": time.time(), **values}))

    def read(self) -> dict[str, Any]:
        state: dict[str, Any] = json.loads(self.path.read_text())
        return state

    def update(self, **changes: Any) -> None:
        self.path.write_text(json.dumps({**self.read(), **changes}))

    def elapsed(self) -> str:
        return f"{time.time() - self.read()['started']:.1f}s"
