"""Waiting on conditions instead of sleeping: the suite's one polling helper."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout: float = 30, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy and return that; fail naming ``what`` (what
    was waited for) once ``timeout`` seconds have passed without it."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        assert time.monotonic() < deadline, f"timed out after {timeout:g}s waiting for {what}"
        time.sleep(interval)
