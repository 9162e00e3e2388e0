"""The README and docs/ hold together: every relative link reaches a file, every anchor a heading (or an
``<a id>``) of that file, and the README links every page of docs/. Moving a section cannot leave a dead
link behind."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _outside_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def anchors(path: Path) -> set[str]:
    """GitHub's heading ids (lower case, punctuation dropped, spaces to hyphens, repeats numbered) and the
    explicit ``<a id="...">`` ones."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _outside_code(path.read_text()).splitlines():
        heading = re.match(r"^#{1,6} (.*)$", line)
        if heading:
            slug = re.sub(r"[^\w\- ]", "", heading[1].strip().lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            found.add(slug if n == 0 else f"{slug}-{n}")
        found.update(re.findall(r'<a id="([^"]+)"></a>', line))
    return found


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(document: Path) -> None:
    dead = []
    for target in LINK.findall(_outside_code(document.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        file = document if not path else (document.parent / path).resolve()
        if not file.exists():
            dead.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            dead.append(f"{target}: no such heading in {file.relative_to(ROOT)}")
    assert dead == []


def test_the_readme_links_every_page_of_the_docs() -> None:
    linked = {Path(t.partition("#")[0]).name for t in LINK.findall((ROOT / "README.md").read_text())}
    assert {p.name for p in DOCUMENTS[1:]} <= linked


def test_the_checker_sees_a_dead_anchor(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text('# Title: one, two\n\n## `code` heading\n\n<a id="spot"></a>\n')
    assert anchors(page) == {"title-one-two", "code-heading", "spot"}
