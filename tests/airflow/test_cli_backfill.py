"""`outbox-relay backfill` as an on-call engineer types it: dry run, the backfill, and what it refuses.
(In-process: `cli.main` with the connections in the environment, as the console script runs it.)"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from outbox_relay_airflow import cli
from tests.integration.kafka_tools import create_topics, read_all
from tests.integration.outbox_rows import insert_rows, statuses

pytestmark = [pytest.mark.airflow, pytest.mark.integration]


@pytest.mark.usefixtures("airflow_connections_env")
def test_backfill_dry_run_then_backfill_then_refusals(
    db_engine: Engine,
    topic_name: Callable[[str], str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    topic = topic_name("cli_backfill")
    create_topics(topic)
    (tmp_path / "billing.yaml").write_text(f"topic: {topic}\n")
    inside = insert_rows(db_engine, topic, ["a", "b"])
    outside = insert_rows(db_engine, topic, ["c"])
    with db_engine.begin() as conn:
        conn.execute(text("UPDATE outbox_message SET created_at = '2026-11-20 02:00:00'"))
        conn.execute(text("UPDATE outbox_message SET created_at = '2026-11-20 09:00:00' WHERE message_id = :m"),
                     {"m": outside[0]})  # fmt: skip
    window = ["--since", "2026-11-20T01:00", "--until", "2026-11-20T07:00"]

    def backfill(*args: str) -> tuple[int, str, str]:
        try:
            code = cli.main(["--services-dir", str(tmp_path), "backfill", *args])
        except SystemExit as exc:  # argparse refusals
            code = int(exc.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, _ = backfill("billing", *window, "--reason", "INC-9", "--dry-run")
    assert code == 0 and "[2026-11-20 01:00:00, 2026-11-20 07:00:00): 2 NEW" in out and "dry run" in out, out
    assert set(statuses(db_engine).values()) == {"NEW"}

    code, out, err = backfill("billing", *window, "--reason", "INC-9", "--json")
    report = json.loads(out.strip().splitlines()[-1])
    assert code == 0 and (report["published"], report["stopped_because"]) == (2, "drained"), out
    assert "chunk 1: 2 published" in err  # progress, on stderr
    assert [statuses(db_engine)[m] for m in (*inside, *outside)] == ["SENT", "SENT", "NEW"]
    assert sorted(r.headers["outbox-message-id"] for r in read_all(topic)) == sorted(inside)

    for args, message in [
        (["billing", *window], "the following arguments are required: --reason"),
        (
            ["billing", "--since", "yesterday", "--until", "2026-11-20", "--reason", "x"],
            "'yesterday' is not an ISO",
        ),
        (
            ["billing", "--since", "2026-11-20T07:00", "--until", "2026-11-20T01:00", "--reason", "x"],
            "must be before",
        ),
        (
            ["billing", *window, "--reason", "x", "--chunk-seconds", "0"],
            "backfill --chunk-seconds must be at least 1",
        ),
        (["billing", *window, "--reason", " "], "backfill --reason is required"),
        (["nope", *window, "--reason", "x"], "nope"),
    ]:
        code, out, err = backfill(*args)
        assert code == 2 and message in out + err, (args, out, err)
