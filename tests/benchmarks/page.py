"""The Outbox page on a big table: its overview (every figure of one service), one service's page (the
figures, the last hour's chart and the count behind "select all matching"), the first page of the FAILED
list and a search by key (no index on the key: the newest 100,000 rows are read), in milliseconds, on
``terminal_rows`` rows (1M by default) spread over a week the way a busy table looks: the newest 1% NEW
(a backlog), the 1% before SENT, 1% FAILED spread over the week (seven different errors), the rest
CONFIRMED."""

from __future__ import annotations

import time

from sqlalchemy import Engine, text

from outbox_relay.dashboard import Dashboard, RowSearch
from tests.benchmarks.common import Result, Sizes, bench_config, fill, scratch_db

TOPIC = "bench.page"


def _table(engine: Engine, rows: int) -> None:
    fill(engine, TOPIC, rows, "CONFIRMED")
    with engine.begin() as conn:  # the newest rows are the most recent ones, as in a live table
        last = conn.execute(text("SELECT MAX(id) FROM outbox_message")).scalar_one()
        age = f"INTERVAL (({last} - id) * {604800 / rows:.6f}) SECOND"
        conn.execute(
            text(
                "UPDATE outbox_message SET "
                f"created_at = NOW(6) - {age} - INTERVAL 1 SECOND, "
                f"sent_at = NOW(6) - {age}, confirmed_at = NOW(6) - {age}, updated_at = NOW(6) - {age}, "
                # NEW: the newest 1% (the backlog), SENT: the 1% before (awaiting answers), FAILED: 1% of
                # the rest, spread over the week; CONFIRMED: everything else.
                f"status = CASE WHEN id > {last} - {rows // 100} THEN 'NEW' "
                f"WHEN id > {last} - {rows // 50} THEN 'SENT' WHEN id % 100 = 0 THEN 'FAILED' "
                "ELSE 'CONFIRMED' END, "
                f"last_error = IF(id % 100 = 0 AND id <= {last} - {rows // 50}, "
                "CONCAT('consumer rejected: reason ', id % 7), NULL), "
                f"attempts = IF(id % 100 = 0 AND id <= {last} - {rows // 50}, 5, 0)"
            )
        )


def _milliseconds(work: object, repeats: int) -> list[float]:
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()  # type: ignore[operator]
        samples.append(round((time.perf_counter() - started) * 1000, 1))
    return samples


def measure(sizes: Sizes) -> list[Result]:
    config = bench_config(TOPIC, 2000, confirmation={"topic": f"{TOPIC}.results"})
    dashboard = Dashboard(config)
    with scratch_db("page") as engine:
        _table(engine, sizes.terminal_rows)
        with engine.connect() as conn:
            figures = dashboard.figures(conn)
            if figures.problems or not figures.failed:
                raise RuntimeError(f"the page's figures are wrong: {figures}")
            overview = _milliseconds(lambda: dashboard.figures(conn), sizes.repeats)
            service = _milliseconds(
                lambda: (
                    dashboard.figures(conn, with_activity=True),
                    dashboard.count_matching(conn, RowSearch()),
                ),
                sizes.repeats,
            )
            by_key = _milliseconds(lambda: dashboard.search(conn, "key-7"), sizes.repeats)
            listed = _milliseconds(lambda: dashboard.rows(conn, RowSearch()), sizes.repeats)
            by_error = _milliseconds(
                lambda: dashboard.rows(conn, RowSearch(error_text="reason 3")), sizes.repeats
            )
    extra = {"rows": sizes.terminal_rows, "failed": figures.failed}
    return [
        Result("page_overview", None, "ms", overview, extra),
        Result("page_service", None, "ms", service, extra),
        Result("page_search_by_key", None, "ms", by_key, extra),
        Result("page_failed_list", None, "ms", listed, extra),
        Result("page_failed_list_by_error", None, "ms", by_error, extra),
    ]
