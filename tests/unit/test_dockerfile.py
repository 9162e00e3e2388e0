"""Structural checks of ./Dockerfile, the custom image of the README's "Install into your Airflow" (no
Docker engine here): it starts from the official image at the versions this project is tested on, pins
Airflow while installing the wheel, and its wheel stage gets every file the wheel is made of. That stage
is re-enacted: the files its COPY lines take (less what .dockerignore leaves out) build a wheel with the
packages, their data files and the entry points Airflow needs."""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO_ROOT / "Dockerfile"
UV = REPO_ROOT / ".run" / "tools" / "bin" / "uv"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text(encoding="utf-8"))
    found = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def _stages() -> dict[str, list[tuple[str, str]]]:
    """Each stage's instructions by its name (the last, unnamed one is 'final'); 'global' holds the ARGs
    before the first FROM."""
    stages: dict[str, list[tuple[str, str]]] = {"global": []}
    current = "global"
    for word, rest in _instructions():
        if word == "FROM":
            named = re.search(r"\s+AS\s+(\S+)$", rest, re.I)
            current = named.group(1) if named else "final"
            stages[current] = []
        stages[current].append((word, rest))
    return stages


def _locked(name: str) -> str:
    for line in (REPO_ROOT / "requirements.lock").read_text().splitlines():
        if line.startswith(f"{name}=="):
            return line.split("==", 1)[1]
    raise AssertionError(f"{name} is not in requirements.lock")


def test_the_image_is_the_official_one_at_the_tested_versions() -> None:
    defaults = dict(rest.split("=", 1) for word, rest in _stages()["global"] if word == "ARG")
    assert defaults == {"AIRFLOW_VERSION": _locked("apache-airflow"), "PYTHON_VERSION": "3.11"}
    final = _stages()["final"]
    assert final[0] == ("FROM", "apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}")


def test_the_wheel_is_installed_with_airflow_pinned_to_the_images_own_version() -> None:
    """The official image's rule: name apache-airflow at its own version in the same pip install, so that
    resolving the relay's ranges never replaces the image's Airflow."""
    final = _stages()["final"]
    assert ("ARG", "AIRFLOW_VERSION") in final  # the global ARG, visible in this stage
    (install,) = [rest for word, rest in final if word == "RUN" and "pip install" in rest]
    assert '"apache-airflow==${AIRFLOW_VERSION}"' in install
    assert "airflow_outbox_relay-*.whl" in install and "--no-cache-dir" in install
    assert "outbox-relay --help" in install  # the console script works in the image
    assert not any(word == "USER" and rest == "root" for word, rest in final), "pip runs as the airflow user"
    copied = [rest for word, rest in final if word == "COPY"]
    assert copied == ["--from=wheel /dist/ /tmp/outbox-relay/"]


def _ignored(relative: str, patterns: list[str]) -> bool:
    return any(
        fnmatch.fnmatch(relative, p)
        or fnmatch.fnmatch(relative, p.removeprefix("**/"))
        or relative.startswith(p.rstrip("/") + "/")
        for p in patterns
    )


def test_the_wheel_stage_has_every_file_the_wheel_is_made_of(tmp_path: Path) -> None:
    if not UV.exists():
        pytest.fail(f"{UV} is missing: `make install` puts uv there")
    patterns = [
        line.strip()
        for line in (REPO_ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    context = tmp_path / "context"
    wheel_stage = _stages()["wheel"]
    assert wheel_stage[0][1].startswith("python:${PYTHON_VERSION}")
    for word, rest in wheel_stage:
        if word != "COPY":
            continue
        *sources, _target = rest.split()
        for source in sources:
            origin = REPO_ROOT / source.rstrip("/")
            files = [origin] if origin.is_file() else [p for p in origin.rglob("*") if p.is_file()]
            for path in files:
                relative = str(path.relative_to(REPO_ROOT))
                if not _ignored(relative, patterns):
                    (context / relative).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(path, context / relative)
    (run,) = [rest for word, rest in wheel_stage if word == "RUN"]
    assert run.startswith("pip wheel") and "--no-deps" in run and run.endswith(" .")
    done = subprocess.run(
        [str(UV), "build", "-q", "--wheel", "-o", str(tmp_path / "dist"), str(context)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (wheel,) = (tmp_path / "dist").glob("airflow_outbox_relay-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "outbox_relay_airflow/provider_info.py",
        "outbox_relay_airflow/outbox_page/templates/service.html",
        "outbox_relay/store/sql/01_outbox_message.sql",
        "outbox_relay_airflow/scaffold/templates/services/orders.yaml",
        "outbox_inbox/consumer.py",
    ):
        assert needed in names, f"{needed} is not in the image's wheel"
    assert not any(n.startswith("outbox_examples/") for n in names), (
        "the examples are not part of the package"
    )
    entry_points = next(
        zipfile.ZipFile(wheel).read(n).decode() for n in names if n.endswith("entry_points.txt")
    )
    assert "[airflow.plugins]" in entry_points and "[apache_airflow_provider]" in entry_points


def test_the_build_context_leaves_out_the_local_environments() -> None:
    patterns = (REPO_ROOT / ".dockerignore").read_text().split()
    for heavy in (".venv", ".run", ".git"):
        assert heavy in patterns, f".dockerignore must leave out {heavy}"
    for needed in (
        "include/outbox_relay/config/service.py",
        "plugins/outbox_relay_airflow/hooks.py",
        "README.md",
    ):
        assert not _ignored(needed, patterns), f".dockerignore leaves out {needed}, which the wheel needs"
