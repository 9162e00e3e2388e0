"""The compatibility matrix: the wheel built from this checkout, installed into a fresh virtual environment
per cell without the project's lock (uv resolves within pyproject's ranges), and an Airflow home that uses
it: `outbox-relay init` as the DAG folder, an empty plugins folder, connections in the metadata database.

Cells:
* oldest: Python 3.10 and Airflow 3.1.0, every direct dependency at its lower bound, everything else as it
  was on 2025-10-01 (a week after 3.1.0's release: what its constraints file pins; newer structlog,
  cryptography and FastAPI releases break Airflow 3.1.0, see docs/install.md).
* fab31: Python 3.11 and Airflow 3.1.8 with the FAB provider, as the official 3.1 images have it, as of a
  week after 3.1.8's release.
* newest: Python 3.13 and Airflow 3.3.2 (the newest release), everything else the newest the ranges allow.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import zipfile
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT

UV = ROOT / ".run" / "tools" / "bin" / "uv"
WORK = ROOT / ".run" / "compat"


@dataclass(frozen=True)
class Cell:
    name: str
    python: str
    airflow: str
    lowest_direct: bool  # our direct dependencies at their lower bounds
    as_of: str | None  # resolve everything else as of this moment (uv --exclude-newer)
    beside: tuple[str, ...] = ()  # installed with it, as the deployment would have them

    @property
    def has_fab(self) -> bool:
        return any(name.startswith("apache-airflow-providers-fab") for name in self.beside)


OLDEST = Cell("oldest", "3.10", "3.1.0", lowest_direct=True, as_of="2025-10-01T00:00:00Z")
# Airflow 3.1 as its official image has it: with the FAB provider (at 3.2.0+, which allows SQLAlchemy 2),
# whose UI libraries are what Airflow 3.1 builds a hook's connection form from.
# Everything as of a week after 3.1.8's release (newer cryptography breaks every 3.1.x: docs/install.md).
FAB_31 = Cell(
    "fab31",
    "3.11",
    "3.1.8",
    lowest_direct=False,
    as_of="2026-03-15T00:00:00Z",
    beside=("apache-airflow-providers-fab>=3.2.0",),
)
NEWEST = Cell("newest", "3.13", "3.3.2", lowest_direct=False, as_of=None)
CELLS = (OLDEST, FAB_31, NEWEST)


def python_for(version: str) -> str:
    """An interpreter of ``version``: pyenv's, else one on PATH."""
    root = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    found = sorted(glob.glob(f"{root}/versions/{version}.*/bin/python{version}"))
    if found:
        return found[-1]
    on_path = shutil.which(f"python{version}")
    assert on_path, f"no Python {version} here (pyenv or PATH): install it to run the matrix"
    return on_path


def _run(args: list[str | Path], timeout: float = 900) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{' '.join(map(str, args))} failed:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    )
    return done.stdout


def build_wheel(out: Path) -> Path:
    """The wheel of this checkout (``uv build``, as ``make wheel`` does)."""
    shutil.rmtree(out, ignore_errors=True)
    _run([UV, "build", "-q", "--wheel", "-o", out, ROOT])
    (wheel,) = out.glob("airflow_outbox_relay-*.whl")
    return wheel


def lower_bounds(wheel: Path) -> list[str]:
    """``name==lower`` for each direct dependency the wheel declares (extras left out)."""
    with zipfile.ZipFile(wheel) as archive:
        metadata = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        lines = archive.read(metadata).decode().splitlines()
    pins = []
    for line in lines:
        found = re.match(r"Requires-Dist: ([A-Za-z0-9_.\-]+)>=([^,;\s]+)$", line)
        if found:
            pins.append(f"{found[1]}=={found[2]}")
    return pins


def install(cell: Cell, wheel: Path, venv: Path) -> str:
    """A fresh venv with the wheel and the cell's Airflow; returns `uv pip list` (what was resolved)."""
    shutil.rmtree(venv, ignore_errors=True)
    _run([UV, "venv", "-q", "-p", python_for(cell.python), venv])
    python = venv / "bin" / "python"
    args: list[str | Path] = [UV, "pip", "install", "-q", "-p", python]
    if cell.as_of:
        args += ["--exclude-newer", cell.as_of]
    if cell.lowest_direct:
        constraints = venv / "lower-bounds.txt"
        constraints.write_text("\n".join(lower_bounds(wheel)) + "\n")
        args += ["-c", constraints]
    _run([*args, wheel, f"apache-airflow=={cell.airflow}", *cell.beside])
    return _run([UV, "pip", "list", "-p", python])
