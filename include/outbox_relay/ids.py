"""Time-ordered message ids (the UUIDv7 layout of RFC 9562), and telling such ids from random ones.

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
import re
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

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


_UUID = re.compile(
    r"^[0-9a-f]{8}-?[0-9a-f]{4}-?([0-9a-f])[0-9a-f]{3}-?[89ab][0-9a-f]{3}-?[0-9a-f]{12}$", re.I
)
_ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$", re.I)
RANDOM_UUID_VERSIONS = frozenset("12345")  # v1 is time-based, but its low time bits come first
UNORDERED_SHARE = 0.9  # of sampled ids, for a verdict


def id_order(values: list[Any]) -> str:
    """What sorting these primary-key values gives: ``creation`` (time-ordered UUIDs v6/v7, ULIDs),
    ``random`` (UUIDs of versions 1 to 5: their text does not sort by time), or ``unknown`` (anything else:
    per-key order then rests on how the writer makes them)."""
    versions = [_uuid_version(v) for v in values]
    if not values:
        return "unknown"
    if sum(v in RANDOM_UUID_VERSIONS for v in versions) >= UNORDERED_SHARE * len(values):
        return "random"
    ordered = sum(
        v in {"6", "7"} or (v is None and bool(_ULID.match(_text(x))))
        for v, x in zip(versions, values, strict=True)
    )
    return "creation" if ordered >= UNORDERED_SHARE * len(values) else "unknown"


def _text(value: Any) -> str:
    return value.hex() if isinstance(value, bytes | bytearray) else str(value).strip()


def _uuid_version(value: Any) -> str | None:
    found = _UUID.match(_text(value))
    return None if found is None else found.group(1)
