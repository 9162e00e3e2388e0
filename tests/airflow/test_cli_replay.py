"""`outbox-relay replay` as an on-call engineer types it: dry run, the replay, and arguments it refuses."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from tests.airflow.test_cli import _cli
from tests.integration.kafka_tools import create_topics
from tests.integration.outbox_rows import insert_rows, statuses
from tests.stack import service_folder

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


def test_replay_dry_run_then_replay_then_refusals(
    db_engine: Engine, topic_name: Callable[[str], str], tmp_path: Path
) -> None:
    topic = topic_name("cli_replay")
    create_topics(topic)
    services = service_folder(tmp_path, "billing", f"topic: {topic}\n")
    a, _ = insert_rows(db_engine, topic, ["a", "b"])
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET status = 'FAILED', attempts = 5, last_error = 'boom'"))
    url = db_engine.url.render_as_string(hide_password=False)

    def replay(*args: str) -> tuple[int, str]:
        done = _cli(["replay", "billing", *args], url, services)
        return done.returncode, done.stdout + done.stderr

    code, out = replay("--reason", "INC-42", "--key", "a", "--dry-run")
    assert code == 0 and "1 rows match; 1 would be requeued" in out and a in out, out
    assert set(statuses(db_engine).values()) == {"FAILED"}

    code, out = replay("--reason", "INC-42", "--by", "alice", "--json")
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and report["requeued"] == 2 and report["dry_run"] is False, out
    assert set(statuses(db_engine).values()) == {"NEW"}
    with db_engine.connect() as conn:
        who = conn.execute(text("SELECT DISTINCT requested_by, reason FROM outbox_relay_replay")).all()
    assert [tuple(w) for w in who] == [("alice", "INC-42")]

    for args, message in [
        (["--key", "a"], "the following arguments are required: --reason"),
        (["--reason", "x", "--since", "yesterday"], "replay --since: 'yesterday' is not an ISO date"),
        (["--reason", "x", "--unconfirmed"], "has no confirmation topic"),
        (["--reason", "x", "--max-rows", "0"], "replay --max-rows must be at least 1"),
        (["--reason", " "], "replay --reason is required"),
    ]:
        code, out = replay(*args)
        assert code == 2 and message in out, (args, out)
