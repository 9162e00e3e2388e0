"""Telling primary keys that sort in creation order from random ones (validate's per-key order check)."""

from __future__ import annotations

import uuid

from outbox_relay.ids import id_order, uuid7


def test_random_uuids_are_random_in_any_form() -> None:
    assert id_order([str(uuid.uuid4()) for _ in range(50)]) == "random"
    assert id_order([uuid.uuid4().hex.upper() for _ in range(50)]) == "random"  # no dashes, upper case
    assert id_order([uuid.uuid4().bytes for _ in range(50)]) == "random"  # BINARY(16)
    assert id_order([str(uuid.uuid1()) for _ in range(50)]) == "random"  # time-based, low bits first


def test_time_ordered_ids_are_creation_order() -> None:
    assert id_order([uuid7() for _ in range(50)]) == "creation"
    assert id_order(["01HZY3K6W9M1Q8V2N4P7R5T0XB", "01HZY3K6WA0000000000000000"]) == "creation"  # ULIDs


def test_anything_else_is_unknown() -> None:
    assert id_order([]) == "unknown"
    assert id_order([f"order-{n}" for n in range(50)]) == "unknown"
    mixed = [str(uuid.uuid4()) for _ in range(5)] + [f"x{n}" for n in range(5)]
    assert id_order(mixed) == "unknown"  # neither verdict holds for 90% of them
