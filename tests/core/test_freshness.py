"""Every cell of the knowledge machine, written out independently of the table under test."""

from __future__ import annotations

import itertools

import pytest

from watchdog.core.freshness import TRANSITIONS, Evidence, IllegalTransition, transition
from watchdog.core.model import Knowledge

U, C, S, X = Knowledge.UNKNOWN, Knowledge.CONFIRMED, Knowledge.SUSPECT, Knowledge.EXPIRED
E = Evidence
ILLEGAL = None

# (state, evidence) -> expected next state, or ILLEGAL. One line per cell.
EXPECTED: dict[tuple[Knowledge, Evidence], Knowledge | None] = {
    (U, E.AUTHORITATIVE_FACT): C,
    (U, E.STREAM_FACT): C,
    (U, E.UNCONFIRMED_FACT): U,
    (U, E.STREAM_GAP): U,
    (U, E.READ_FAILED): U,
    (U, E.REST_AMBIGUOUS): U,
    (U, E.TRIGGER_CROSSED): U,
    (U, E.AGED): ILLEGAL,
    (C, E.AUTHORITATIVE_FACT): C,
    (C, E.STREAM_FACT): C,
    (C, E.UNCONFIRMED_FACT): S,
    (C, E.STREAM_GAP): S,
    (C, E.READ_FAILED): S,
    (C, E.REST_AMBIGUOUS): S,
    (C, E.TRIGGER_CROSSED): S,
    (C, E.AGED): X,
    (S, E.AUTHORITATIVE_FACT): C,
    (S, E.STREAM_FACT): S,
    (S, E.UNCONFIRMED_FACT): S,
    (S, E.STREAM_GAP): S,
    (S, E.READ_FAILED): S,
    (S, E.REST_AMBIGUOUS): S,
    (S, E.TRIGGER_CROSSED): S,
    (S, E.AGED): X,
    (X, E.AUTHORITATIVE_FACT): C,
    (X, E.STREAM_FACT): X,
    (X, E.UNCONFIRMED_FACT): X,
    (X, E.STREAM_GAP): X,
    (X, E.READ_FAILED): X,
    (X, E.REST_AMBIGUOUS): X,
    (X, E.TRIGGER_CROSSED): X,
    (X, E.AGED): ILLEGAL,
}


def test_expected_covers_every_pair() -> None:
    assert set(EXPECTED) == set(itertools.product(Knowledge, Evidence))


def test_table_has_every_state_and_nothing_else() -> None:
    assert set(TRANSITIONS) == set(Knowledge)
    listed = {(s, e) for s, row in TRANSITIONS.items() for e in row}
    assert listed == {pair for pair, nxt in EXPECTED.items() if nxt is not ILLEGAL}


@pytest.mark.parametrize(("state", "evidence"),
                         [pair for pair, nxt in EXPECTED.items() if nxt is not ILLEGAL],
                         ids=lambda v: v.value)
def test_legal_cell(state: Knowledge, evidence: Evidence) -> None:
    assert transition(state, evidence) is EXPECTED[(state, evidence)]


@pytest.mark.parametrize(("state", "evidence"),
                         [pair for pair, nxt in EXPECTED.items() if nxt is ILLEGAL],
                         ids=lambda v: v.value)
def test_illegal_cell_names_both(state: Knowledge, evidence: Evidence) -> None:
    with pytest.raises(IllegalTransition) as caught:
        transition(state, evidence)
    assert caught.value.state is state
    assert caught.value.evidence is evidence
    assert state.value in str(caught.value)
    assert evidence.value in str(caught.value)


def test_only_authoritative_fact_lifts_doubt() -> None:
    for state in (S, X):
        lifts = {e for e, nxt in TRANSITIONS[state].items() if nxt is C}
        assert lifts == {E.AUTHORITATIVE_FACT}
