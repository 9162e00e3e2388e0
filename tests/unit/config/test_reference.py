"""docs/configuration.md is the models' reference: generated from their field descriptions, so a field
cannot be added, renamed or redescribed without the page following (``make docs``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import BaseModel, Field

from outbox_relay.config.reference import (
    SECTIONS,
    Section,
    main,
    reachable_models,
    render_reference,
    render_section,
)

ROOT = Path(__file__).resolve().parents[3]
COMMITTED = ROOT / "docs" / "configuration.md"


def test_the_committed_page_is_the_rendered_reference() -> None:
    assert COMMITTED.read_text() == render_reference(), (
        "docs/configuration.md differs from the models' descriptions: run `make docs`"
    )


def _sections(text: str) -> dict[str, str]:
    """Heading -> the text under it, for the page's ``## `` sections."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2], strict=True))


@pytest.mark.parametrize("model", reachable_models(), ids=lambda m: m.__name__)
def test_every_field_of_every_model_has_a_row_in_its_section(model: type[BaseModel]) -> None:
    headings = [s.heading for s in SECTIONS if s.model is model]
    assert len(headings) == 1, f"{model.__name__} needs exactly one section"
    body = _sections(render_reference())[headings[0]]
    rows = re.findall(r"^\| `(\w+)` \|", body, flags=re.M)
    assert rows == list(model.model_fields)


def test_every_section_is_a_model_a_service_file_can_hold() -> None:
    assert {s.model for s in SECTIONS} == set(reachable_models())


def test_a_field_without_a_description_is_refused_by_name() -> None:
    class Undocumented(BaseModel):
        told: int = Field(1, description="Documented.")
        untold: int = 2

    with pytest.raises(ValueError, match=r"Undocumented\.untold has no description"):
        render_section(Section("`x`", Undocumented), {Undocumented: "[`x`](#x)"})


def test_the_module_writes_the_page(tmp_path: Path) -> None:
    target = tmp_path / "configuration.md"
    assert main([str(target)]) == 0
    assert target.read_text() == render_reference()
