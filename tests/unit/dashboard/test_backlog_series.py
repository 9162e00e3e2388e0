"""The backlog line, rebuilt from rows: a row counts from the minute it was created until the minute it
was sent; rows still pending count to the end."""

from __future__ import annotations

from outbox_relay.activity import backlog_notes, backlog_series
from outbox_relay.config import ServiceConfig
from outbox_relay.models import BacklogRows
from outbox_relay.store.activity import PENDING_COUNTED

MINUTES = ["10:00", "10:01", "10:02", "10:03"]  # any strings that sort as times


def test_rows_count_from_creation_until_sent() -> None:
    rows = BacklogRows(
        pending_by_created={"10:00": 2, "10:02": 1},  # created before the hour are clamped to 10:00
        left_by_created_and_left={("10:00", "10:02"): 5, ("10:01", "10:01"): 3, ("10:01", "10:03"): 1},
        pending_capped=False,
        left_known=True,
    )
    assert backlog_series(MINUTES, rows) == [2 + 5, 2 + 5 + 1, 2 + 1 + 1, 2 + 1]


def test_notes_say_what_the_line_leaves_out() -> None:
    config = ServiceConfig.model_validate({"service": "s", "topic": "t"})
    capped = BacklogRows({"10:00": PENDING_COUNTED}, {}, pending_capped=True, left_known=False)
    notes = backlog_notes(config, capped)
    assert any("lower bound" in n for n in notes) and any("only rows still pending" in n for n in notes)
    assert backlog_notes(config, BacklogRows({}, {}, False, True)) == []
    assert "no creation time" in backlog_notes(config, None)[0]
    deleting = config.model_copy(update={"completion": "delete"})
    assert (
        "completion: delete removes sent rows" in backlog_notes(deleting, BacklogRows({}, {}, False, True))[0]
    )
