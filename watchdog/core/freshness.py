"""The knowledge machine: how much the watchdog trusts what it holds about one position.

Position *size* is data (``book.py``); what we *know* about it is a state of this machine. The
whole machine is one literal table so it can be read, tested cell by cell and drawn for the README
(``python -m watchdog.core.diagram``), as h11 does with its connection states.

Rules of this module:
1. ``TRANSITIONS`` is the only definition of the machine. A (state, evidence) pair that is not in
   the table is a bug in the caller: ``transition`` raises ``IllegalTransition`` naming both.
2. Only an authoritative fact (a REST snapshot requested after the last stream gap) lifts doubt:
   SUSPECT and EXPIRED go back to CONFIRMED through ``AUTHORITATIVE_FACT`` and nothing else.
3. A stream fact keeps CONFIRMED confirmed and may confirm a brand-new position, but never
   clears a doubt the stream itself cannot answer (a gap, a failed read, an ambiguous REST row).
4. Nothing here knows about time: ``AGED`` is decided by the caller from ``verified_ms``.
"""

from __future__ import annotations

from enum import StrEnum

from watchdog.core.model import Knowledge

__all__ = ["MEANING", "TRANSITIONS", "Evidence", "IllegalTransition", "transition"]


class Evidence(StrEnum):
    """What happened to a position's knowledge (the inputs of the machine)."""

    AUTHORITATIVE_FACT = "authoritative_fact"
    STREAM_FACT = "stream_fact"
    UNCONFIRMED_FACT = "unconfirmed_fact"
    STREAM_GAP = "stream_gap"
    READ_FAILED = "read_failed"
    REST_AMBIGUOUS = "rest_ambiguous"
    TRIGGER_CROSSED = "trigger_crossed"
    AGED = "aged"


MEANING: dict[Evidence, str] = {
    Evidence.AUTHORITATIVE_FACT:
        "a REST snapshot requested after the last stream gap covered the key (row or absence)",
    Evidence.STREAM_FACT:
        "a newer stream fact on a connected stream, for a key reconciled by REST since the gap",
    Evidence.UNCONFIRMED_FACT:
        "a newer fact that cannot confirm: a stream fact during a gap, a snapshot from before it",
    Evidence.STREAM_GAP: "StreamLost, StreamConnected or ListenKeyExpired: events may be missed",
    Evidence.READ_FAILED: "a REST read covering the key failed (never means flat)",
    Evidence.REST_AMBIGUOUS:
        "REST shows flat without a time, within max_rest_lag_ms of a newer held fact",
    Evidence.TRIGGER_CROSSED:
        "a public price crossed the trigger of one of the key's stops: the exchange may be closing it",
    Evidence.AGED: "now_ms - verified_ms exceeded max_age_ms, or now_ms went back (age unknown)",
}


_U, _C, _S, _X = Knowledge.UNKNOWN, Knowledge.CONFIRMED, Knowledge.SUSPECT, Knowledge.EXPIRED

TRANSITIONS: dict[Knowledge, dict[Evidence, Knowledge]] = {
    Knowledge.UNKNOWN: {
        Evidence.AUTHORITATIVE_FACT: _C,
        Evidence.STREAM_FACT: _C,        # a new position opened on a reconciled, connected stream
        Evidence.UNCONFIRMED_FACT: _U,
        Evidence.STREAM_GAP: _U,
        Evidence.READ_FAILED: _U,
        Evidence.REST_AMBIGUOUS: _U,
        Evidence.TRIGGER_CROSSED: _U,
        # AGED: never confirmed, so there is nothing to age
    },
    Knowledge.CONFIRMED: {
        Evidence.AUTHORITATIVE_FACT: _C,
        Evidence.STREAM_FACT: _C,
        Evidence.UNCONFIRMED_FACT: _S,   # the held truth changed through a channel we cannot trust
        Evidence.STREAM_GAP: _S,
        Evidence.READ_FAILED: _S,
        Evidence.REST_AMBIGUOUS: _S,
        Evidence.TRIGGER_CROSSED: _S,
        Evidence.AGED: _X,
    },
    Knowledge.SUSPECT: {
        Evidence.AUTHORITATIVE_FACT: _C,
        Evidence.STREAM_FACT: _S,        # the stream cannot answer a doubt about itself or REST
        Evidence.UNCONFIRMED_FACT: _S,
        Evidence.STREAM_GAP: _S,
        Evidence.READ_FAILED: _S,
        Evidence.REST_AMBIGUOUS: _S,
        Evidence.TRIGGER_CROSSED: _S,
        Evidence.AGED: _X,
    },
    Knowledge.EXPIRED: {
        Evidence.AUTHORITATIVE_FACT: _C,
        Evidence.STREAM_FACT: _X,
        Evidence.UNCONFIRMED_FACT: _X,
        Evidence.STREAM_GAP: _X,
        Evidence.READ_FAILED: _X,
        Evidence.REST_AMBIGUOUS: _X,
        Evidence.TRIGGER_CROSSED: _X,
        # AGED: already expired; the caller ages only CONFIRMED and SUSPECT knowledge
    },
}


class IllegalTransition(Exception):
    """A (state, evidence) pair absent from ``TRANSITIONS``: a bug in the caller.

    The core imports only the standard library, so this does not derive from
    ``watchdog.errors.InvariantViolation``; the shell treats it the same way (exit 70).
    """

    def __init__(self, state: Knowledge, evidence: Evidence) -> None:
        self.state = state
        self.evidence = evidence
        super().__init__(f"illegal knowledge transition: {evidence.value} in state {state.value}")


def transition(state: Knowledge, evidence: Evidence) -> Knowledge:
    """Return the next knowledge state.

    Raises:
        IllegalTransition: the pair is not in ``TRANSITIONS``.
    """
    try:
        return TRANSITIONS[state][evidence]
    except KeyError:
        raise IllegalTransition(state, evidence) from None
