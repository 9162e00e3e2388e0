"""`outbox-relay backfill` as an on-call engineer types it: dry run, the backfill, and what it refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.airflow.test_cli import _cli
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, statuses

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def test_backfill_dry_run_then_backfill_then_refusals(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("cli_backfill")
    create_topics(topic)
    services = tmp_path / "services"
    services.mkdir()
    (services / "billing.yaml").write_text(f"topic: {topic}\n")
    inside = insert_rows(db_engine, topic, ["a", "b"])
    outside = insert_rows(db_engine, topic, ["c"])
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET created_at = '2026-11-20 02:00:00'"))
        conn.execute(text("UPDATE outbox_message SET created_at = '2026-11-20 09:00:00' WHERE message_id = :m"),
                     {"m": outside[0]})  # fmt: skip
    url = db_engine.url.render_as_string(hide_password=False)
    window = ["--since", "2026-11-20T01:00", "--until", "2026-11-20T07:00"]

    def backfill(*args: str) -> tuple[int, str]:
        done = _cli(["backfill", "billing", *args], url, services)
        return done.returncode, done.stdout + done.stderr

    code, out = backfill(*window, "--reason", "INC-9", "--dry-run")
    assert code == 0 and "[2026-11-20 01:00:00, 2026-11-20 07:00:00): 2 NEW" in out and "dry run" in out, out
    assert set(statuses(db_engine).values()) == {"NEW"}

    done = _cli(["backfill", "billing", *window, "--reason", "INC-9", "--json"], url, services)
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert done.returncode == 0 and (report["published"], report["stopped_because"]) == (2, "drained")
    assert "chunk 1: 2 published" in done.stderr  # progress
    assert [statuses(db_engine)[m] for m in (*inside, *outside)] == ["SENT", "SENT", "NEW"]
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(inside)

    for args, message in [
        (window, "the following arguments are required: --reason"),
        (
            ["--since", "yesterday", "--until", "2026-11-20", "--reason", "x"],
            "'yesterday' is not an ISO date",
        ),
        (["--since", "2026-11-20T07:00", "--until", "2026-11-20T01:00", "--reason", "x"], "must be before"),
        ([*window, "--reason", "x", "--chunk-seconds", "0"], "chunk_seconds must be at least 1"),
        ([*window, "--reason", " "], "a reason is required"),
    ]:
        code, out = backfill(*args)
        assert code == 2 and message in out, (args, out)
    unknown = _cli(["backfill", "nope", *window, "--reason", "x"], url, services)
    assert unknown.returncode == 2 and "nope" in unknown.stderr
