"""docs/CORE.md is generated from the code and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from watchdog.core.diagram import render_core_doc, render_rules, render_transitions
from watchdog.core.freshness import MEANING, TRANSITIONS, Evidence
from watchdog.core.model import Knowledge

DOC = Path(__file__).resolve().parents[2] / "docs" / "CORE.md"


def test_docs_core_md_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render_core_doc(), (
        "docs/CORE.md is stale: run `python -m watchdog.core.diagram > docs/CORE.md`")


def test_table_shows_every_cell() -> None:
    lines = render_transitions().splitlines()
    assert len(lines) == 2 + len(Knowledge)
    for state, line in zip(Knowledge, lines[2:], strict=True):
        cells = [c.strip().strip("*") for c in line.strip("|").split("|")][1:]
        expected = [TRANSITIONS[state][e].value if e in TRANSITIONS[state] else "—"
                    for e in Evidence]
        assert cells == expected


def test_every_evidence_is_explained_and_rules_are_numbered() -> None:
    assert set(MEANING) == set(Evidence)
    assert render_rules().startswith("1. ")
