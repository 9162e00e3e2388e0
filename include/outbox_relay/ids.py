"""Time-ordered message ids (the UUIDv7 layout of RFC 9562).

Where message ids are primary keys (or claim order), random UUIDv4 ids would be claimed in random
order, so a user's USER_DEACTIVATED could be published before its USER_CREATED whenever both wait.
A UUIDv7 starts with the millisecond timestamp, so its text form sorts in creation order; within one
millisecond a 12-bit counter keeps ids of this process strictly increasing, and a clock that steps
back never makes an id go backwards.

Python 3.11 has no ``uuid.uuid7`` (3.14 adds it). The ``uuid6`` package's ``uuid7()`` keeps its last
timestamp in an unlocked global (two threads can produce ids out of order) and moves its timestamp a
millisecond ahead per id within one millisecond, so a busy writer runs ahead of the clock; hence this
small generator.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable

_COUNTER_MAX = 0xFFF


class Uuid7Generator:
    """Strictly increasing UUIDv7 values for one process (thread-safe)."""

    def __init__(self, clock_ms: Callable[[], int] = lambda: time.time_ns() // 1_000_000) -> None:
        self._clock_ms = clock_ms
        self._lock = threading.Lock()
        self._last_ms = -1
        self._counter = 0

    def _next_stamp(self) -> tuple[int, int]:
        with self._lock:
            now = self._clock_ms()
            if now > self._last_ms:
                self._last_ms, self._counter = now, int.from_bytes(os.urandom(2), "big") & 0x1FF  # headroom
            elif self._counter < _COUNTER_MAX:
                self._counter += 1
            else:  # 4096 ids in one millisecond (or the clock went back): borrow the next millisecond
                self._last_ms, self._counter = self._last_ms + 1, 0
            return self._last_ms, self._counter

    def new(self) -> uuid.UUID:
        millis, counter = self._next_stamp()
        rand_b = int.from_bytes(os.urandom(8), "big") & ((1 << 62) - 1)
        value = (millis & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
        return uuid.UUID(int=value)


_default = Uuid7Generator()


def uuid7() -> str:
    """A new time-ordered event id in the canonical 36-character text form."""
    return str(_default.new())
