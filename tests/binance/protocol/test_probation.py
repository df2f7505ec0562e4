"""The probation of a rotation's new connection (``binance/protocol/probation.py``), rule by rule."""

from __future__ import annotations

import pytest

from watchdog.binance.protocol.probation import Probation, Verdict

READY = 100.0


def probation() -> Probation:
    return Probation(ready_at=READY, tolerance_s=2.0)


@pytest.mark.parametrize(("old", "new", "now", "verdict"), [
    # (identity, received at) per connection; now; the verdict
    ((), (), 500.0, Verdict.WAIT),                           # a quiet account: both stay open
    ((("a", 101.0),), (("a", 101.1),), 101.1, Verdict.PROMOTE),  # rule 1
    ((("a", 99.0),), (("a", 99.5),), 99.5, Verdict.PROMOTE),     # the overlap's first event too
    ((("a", 101.0),), (), 102.9, Verdict.WAIT),              # owed, not yet late
    ((("a", 101.0),), (), 103.0, Verdict.REJECT),            # rule 2: mute
    ((("a", 99.0),), (), 500.0, Verdict.WAIT),               # sent before the new one was ready
    ((("a", 101.0),), (("b", 101.0),), 103.0, Verdict.REJECT),   # mute to what the old one got
    ((), (("b", 101.0),), 102.0, Verdict.WAIT),              # only the new one: not yet
    ((), (("b", 101.0),), 103.0, Verdict.PROMOTE),           # rule 3: the old one misses events
])
def test_rules(old: tuple[tuple[str, float], ...], new: tuple[tuple[str, float], ...], now: float,
               verdict: Verdict) -> None:
    p = probation()
    for identity, at in old:
        p.old_frame(identity, at)
    for identity, at in new:
        p.new_frame(identity, at)
    assert p.decide(now).verdict is verdict


def test_wait_says_when_to_decide_again() -> None:
    p = probation()
    assert p.decide(100.0).wake_at is None  # nothing pending: only a frame can change it
    p.old_frame("a", 101.0)
    p.new_frame("b", 100.5)
    assert p.decide(101.5).wake_at == 102.5
    decision = p.decide(103.0)
    assert decision.verdict is Verdict.REJECT
    assert "missed 1 event(s)" in decision.reason


def test_an_event_seen_first_at_its_first_arrival() -> None:
    p = probation()
    p.old_frame("a", 101.0)
    p.old_frame("a", 102.9)  # the same event again (a duplicate frame) keeps its first time
    assert p.decide(103.0).verdict is Verdict.REJECT
