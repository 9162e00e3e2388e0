"""``outbox-relay init DIR``: a starting point in a DAG folder. Two DAG files (the services' DAGs, and the
invalid files as import errors), a services folder with one commented example and its editor schema, and
the example table's DDL."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from outbox_relay.config.schema import service_schema_text
from outbox_relay.database import tables
from outbox_relay.errors import ConfigurationError

TEMPLATES = Path(__file__).with_name("templates")
EXAMPLE_TABLE = "outbox_message"


@dataclass(frozen=True)
class ScaffoldFile:
    path: str  # relative to the folder
    text: str


def scaffold_files() -> list[ScaffoldFile]:
    """What ``init`` writes, relative to its folder."""
    ddl = "\n".join(t.sql for t in tables(EXAMPLE_TABLE))
    return [
        *(
            ScaffoldFile(str(path.relative_to(TEMPLATES)), path.read_text(encoding="utf-8"))
            for path in sorted(TEMPLATES.rglob("*"))
            if path.is_file() and path.suffix in {".py", ".yaml"}
        ),
        ScaffoldFile("services/service.schema.json", service_schema_text()),
        ScaffoldFile(
            "services/orders.sql",
            "-- The example service's table and the relay's shared tables; `outbox-relay ddl --service "
            "orders --apply` runs the same.\n" + ddl,
        ),
    ]


def write_scaffold(folder: Path, force: bool = False) -> list[Path]:
    """Write the starting point into ``folder`` (created if missing). Refuses, writing nothing, when a file
    it would write exists, unless ``force``."""
    files = scaffold_files()
    existing = [folder / f.path for f in files if (folder / f.path).exists()]
    if existing and not force:
        names = ", ".join(str(p) for p in existing)
        raise ConfigurationError(f"already there: {names}; nothing written (--force overwrites)")
    written = []
    for item in files:
        target = folder / item.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(item.text, encoding="utf-8")
        written.append(target)
    return written
