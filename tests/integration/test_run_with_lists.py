"""``run_with_lists``: list values written out for the driver, on the real MariaDB. Integer lists go
into the text; other values (quotes, percent signs, bytes) through PyMySQL's escaping; a ``%`` in the
SQL itself survives the driver's ``%`` formatting."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text

from outbox_relay.store.naming import run_with_lists

pytestmark = pytest.mark.integration

AWKWARD = ["plain", "it's", 'say "hi"', "back\\slash", "50%", "%s", "%(x)s", "ünï", ""]


def test_lists_of_any_value_select_exactly_their_rows(db_engine: Engine) -> None:
    with db_engine.begin() as conn:
        conn.execute(text("CREATE TABLE `t%1` (id BIGINT PRIMARY KEY, name VARCHAR(40), raw VARBINARY(8))"))
        for n, name in enumerate(AWKWARD):
            conn.execute(
                text("INSERT INTO `t%1` VALUES (:i, :n, :r)"), {"i": n, "n": name, "r": bytes([n, 0, 255])}
            )
    with db_engine.connect() as conn:
        by_id = run_with_lists(conn, "SELECT name FROM `t%1` WHERE id IN :ids AND name LIKE '%' ORDER BY id",
                               {"ids": [8, 1, 4]}).scalars().all()  # fmt: skip
        assert by_id == ["it's", "50%", ""]
        by_name = run_with_lists(
            conn, "SELECT id FROM `t%1` WHERE name IN :names ORDER BY id", {"names": AWKWARD[1:7]}
        )
        assert by_name.scalars().all() == [1, 2, 3, 4, 5, 6]
        by_bytes = run_with_lists(
            conn, "SELECT id FROM `t%1` WHERE raw IN :raw", {"raw": [bytes([2, 0, 255])]}
        )
        assert by_bytes.scalars().all() == [2]
        mixed = run_with_lists(conn, "SELECT COUNT(*) FROM `t%1` WHERE id IN :ids AND name <> :n",
                               {"ids": [0, 1, 2], "n": "it's"})  # fmt: skip
        assert mixed.scalar() == 2


def test_flags_are_not_taken_for_integers(db_engine: Engine) -> None:
    """``True`` is an ``int`` in Python: it must reach MySQL as a value the driver wrote, never as text."""
    with db_engine.connect() as conn:
        found = run_with_lists(conn, "SELECT 1 IN :flags, 2 IN :ids", {"flags": [True], "ids": [2, 3]}).one()
        assert tuple(found) == (1, 1)
