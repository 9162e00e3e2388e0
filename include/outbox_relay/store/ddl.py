"""Create a scratch database and apply the project's DDL files to it (demo and tests)."""

from __future__ import annotations

import re
from pathlib import Path

from sqlalchemy import URL, Engine, create_engine, make_url, text

SQL_DIR = Path(__file__).resolve().parents[3] / "sql"


def statements(path: Path) -> list[str]:
    body = re.sub(r"--[^\n]*", "", path.read_text(encoding="utf-8"))
    return [s.strip() for s in body.split(";") if s.strip()]


def recreate_database(server_url: str | URL, name: str) -> URL:
    """Drop and create ``name``; returns the URL of the new database."""
    if not re.match(r"^[A-Za-z0-9_]{1,64}$", name):
        raise ValueError(f"bad database name {name!r}")
    url = make_url(server_url)
    admin = create_engine(url.set(database=None))
    with admin.begin() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
    admin.dispose()
    return url.set(database=name)


def apply_ddl(engine: Engine, *files: Path) -> None:
    paths = list(files) or sorted(SQL_DIR.glob("[0-9][0-9]_*.sql"))
    with engine.begin() as conn:
        for path in paths:
            for statement in statements(path):
                conn.execute(text(statement))
